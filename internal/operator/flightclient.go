package operator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/flight"
)

// flightClient is a minimal client of the flight recorder protocol (design §D),
// until flight.Client (same Fetch) is wired here instead.
// TODO(lead): replace with flight.Client{HTTP: ..., Token: ...} once internal/flight lands.
type flightClient struct {
	http     *http.Client
	token    func(context.Context) (string, error)
	maxBytes int64
}

func newFlightClient(token func(context.Context) (string, error)) *flightClient {
	return &flightClient{
		http: &http.Client{Transport: &http.Transport{
			Proxy:                  nil,
			DialContext:            (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			DisableCompression:     true,
			MaxResponseHeaderBytes: 64 << 10,
		}},
		token:    token,
		maxBytes: 64 << 20,
	}
}

// Fetch implements controller.FlightFetcher.
func (c *flightClient) Fetch(ctx context.Context, baseURL string, req flight.Request) (flight.Profile, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, max(0, time.Until(req.To))+30*time.Second)
		defer cancel()
	}
	tok, err := c.token(ctx)
	if err != nil {
		return flight.Profile{}, err
	}
	q := url.Values{"from": {req.From.UTC().Format(time.RFC3339Nano)}, "to": {req.To.UTC().Format(time.RFC3339Nano)}}
	if req.Reason != "" {
		q.Set("reason", req.Reason)
	}
	u := strings.TrimSuffix(baseURL, "/") + "/flight/v1/pods/" + url.PathEscape(req.Namespace) + "/" + url.PathEscape(req.Pod) + "?" + q.Encode()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return flight.Profile{}, fmt.Errorf("flight request: %w", err)
	}
	hreq.Header.Set("Authorization", "Bearer "+tok)
	resp, err := c.http.Do(hreq)
	if err != nil {
		return flight.Profile{}, fmt.Errorf("flight request to %s: %w", baseURL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, c.maxBytes+1))
	if err != nil {
		return flight.Profile{}, fmt.Errorf("read flight profile from %s: %w", baseURL, err)
	}
	if resp.StatusCode != http.StatusOK {
		msg := strings.TrimSpace(string(body))
		if i := strings.IndexByte(msg, '\n'); i >= 0 {
			msg = msg[:i]
		}
		if len(msg) > 512 {
			msg = msg[:512]
		}
		return flight.Profile{}, &flight.StatusError{Code: resp.StatusCode, Message: msg}
	}
	if int64(len(body)) > c.maxBytes {
		return flight.Profile{}, errors.New("flight profile exceeds the size limit")
	}
	p := flight.Profile{Data: body}
	p.Start, _ = time.Parse(time.RFC3339Nano, resp.Header.Get("Kprof-Window-Start"))
	p.End, _ = time.Parse(time.RFC3339Nano, resp.Header.Get("Kprof-Window-End"))
	return p, nil
}
