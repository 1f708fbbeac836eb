package flight

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"
)

const (
	// clientGrace is added to To − now as the timeout of a call whose ctx has
	// no deadline: the agent waits for samples flushed past To first.
	clientGrace = 30 * time.Second
	// maxMessage bounds the text of an error answer that is read.
	maxMessage = 4 << 10
)

// Client fetches pods' profiles from agents' flight recorders.
type Client struct {
	// HTTP sends the requests; nil means http.DefaultClient.
	HTTP *http.Client
	// Token returns the bearer token (the operator reads it from a Secret). Required.
	Token func(context.Context) (string, error)
	// MaxBytes bounds the profile read; a larger answer is an error. Default
	// DefaultMaxBytes.
	MaxBytes int64
}

// Fetch asks the agent at baseURL (http://<agent pod IP>:<port>) for req's
// profile. A call whose ctx has no deadline times out after To − now + 30 s.
// An answer other than 200 is a *StatusError carrying the agent's message.
func (c *Client) Fetch(ctx context.Context, baseURL string, req Request) (Profile, error) {
	p, err := c.fetch(ctx, baseURL, req)
	if err != nil {
		return Profile{}, fmt.Errorf("flight recorder of %s/%s at %s: %w", req.Namespace, req.Pod, baseURL, err)
	}
	return p, nil
}

func (c *Client) fetch(ctx context.Context, baseURL string, req Request) (Profile, error) {
	switch {
	case req.Namespace == "" || req.Pod == "":
		return Profile{}, errors.New("namespace and pod are required")
	case req.From.IsZero() || req.To.IsZero() || !req.To.After(req.From):
		return Profile{}, fmt.Errorf("bad window: from %s to %s", req.From.Format(time.RFC3339Nano), req.To.Format(time.RFC3339Nano))
	case c.Token == nil:
		return Profile{}, errors.New("Client.Token: required")
	}
	u, err := requestURL(baseURL, req)
	if err != nil {
		return Profile{}, err
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(time.Until(req.To), 0)+clientGrace)
		defer cancel()
	}
	token, err := c.Token(ctx)
	if err != nil {
		return Profile{}, fmt.Errorf("recorder token: %w", err)
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Profile{}, fmt.Errorf("build request: %w", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+token)
	hreq.Header.Set("Accept", ContentType)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(hreq)
	if err != nil {
		return Profile{}, err
	}
	defer resp.Body.Close()
	return c.readAnswer(resp)
}

// requestURL is the URL of req's profile at the agent at baseURL.
func requestURL(baseURL string, req Request) (string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("base URL %q: want http(s)://host:port", baseURL)
	}
	u = u.JoinPath(PathPrefix, req.Namespace, req.Pod)
	q := url.Values{}
	q.Set("from", req.From.UTC().Format(time.RFC3339Nano))
	q.Set("to", req.To.UTC().Format(time.RFC3339Nano))
	if req.Reason != "" {
		q.Set("reason", req.Reason)
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// readAnswer reads the agent's answer: the profile and its window, or a
// *StatusError; a profile larger than MaxBytes or not gzipped is an error.
func (c *Client) readAnswer(resp *http.Response) (Profile, error) {
	if resp.StatusCode != http.StatusOK {
		msg := message(resp.Body)
		if msg == "" {
			msg = "(no message)"
		}
		return Profile{}, &StatusError{Code: resp.StatusCode, Message: msg}
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != ContentType {
		return Profile{}, fmt.Errorf("answer of type %q, want %s", resp.Header.Get("Content-Type"), ContentType)
	}
	var (
		p   Profile
		err error
	)
	if p.Start, err = headerTime(resp.Header, HeaderWindowStart); err != nil {
		return Profile{}, err
	}
	if p.End, err = headerTime(resp.Header, HeaderWindowEnd); err != nil {
		return Profile{}, err
	}
	limit := c.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBytes
	}
	if resp.ContentLength > limit {
		return Profile{}, fmt.Errorf("profile of %d bytes exceeds the limit of %d", resp.ContentLength, limit)
	}
	p.Data, err = io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return Profile{}, fmt.Errorf("read profile: %w", err)
	}
	if int64(len(p.Data)) > limit {
		return Profile{}, fmt.Errorf("profile exceeds the limit of %d bytes", limit)
	}
	if !bytes.HasPrefix(p.Data, []byte{0x1f, 0x8b}) {
		return Profile{}, errors.New("profile is not gzipped")
	}
	return p, nil
}

// message reads the first line of an error answer, at most maxMessage bytes.
func message(body io.Reader) string {
	line, _ := bufio.NewReader(io.LimitReader(body, maxMessage)).ReadString('\n')
	return strings.TrimSpace(strings.ToValidUTF8(line, "?"))
}

func headerTime(h http.Header, name string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, h.Get(name))
	if err != nil {
		return time.Time{}, fmt.Errorf("header %s: %q is not an RFC 3339 time", name, h.Get(name))
	}
	return t, nil
}
