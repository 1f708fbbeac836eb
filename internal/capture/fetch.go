package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// maxErrorExcerpt is how much of a non-2xx body goes into the error.
const maxErrorExcerpt = 512

// failure is a failed fetch: a FailureReason and the error describing it.
type failure struct {
	reason string
	err    error
}

// fetch GETs rawURL with a deadline of timeout below ctx, reads at most
// MaxProfileBytes and checks the body is a pprof profile. It returns the bytes
// exactly as served.
func (e *Engine) fetch(ctx context.Context, rawURL string, timeout time.Duration) ([]byte, *failure) {
	shown := redactURL(rawURL)
	reqCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	req, err := http.NewRequestWithContext(reqCtx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, &failure{FailureFetchFailed, fmt.Errorf("build request for %s: %w", shown, err)}
	}
	req.Header.Set("User-Agent", "kprof")
	resp, err := e.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, classify(ctx, reqCtx, fmt.Sprintf("fetch %s", shown), err)
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &failure{FailureHTTPStatus, fmt.Errorf("fetch %s: HTTP status %d: %s", shown, resp.StatusCode, errorBody(resp))}
	}
	limit := e.cfg.MaxProfileBytes
	if resp.ContentLength > limit {
		return nil, &failure{FailureTooLarge, fmt.Errorf("fetch %s: Content-Length %d exceeds the limit of %d bytes", shown, resp.ContentLength, limit)}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, classify(ctx, reqCtx, fmt.Sprintf("read body of %s", shown), err)
	}
	if int64(len(body)) > limit {
		return nil, &failure{FailureTooLarge, fmt.Errorf("fetch %s: body exceeds the limit of %d bytes", shown, limit)}
	}
	if f := validatePprof(body, e.cfg.MaxDecompressedBytes); f != nil {
		f.err = fmt.Errorf("fetch %s: %w", shown, f.err)
		return nil, f
	}
	return body, nil
}

// validatePprof checks that data parses as a pprof profile. A gzip'd body is
// decompressed here with a size limit first, because profile.ParseData would
// decompress without one.
func validatePprof(data []byte, maxDecompressed int64) *failure {
	if isGzip(data) {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return &failure{FailureNotPprof, fmt.Errorf("not a pprof profile: bad gzip header: %w", err)}
		}
		raw, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
		if err != nil {
			return &failure{FailureNotPprof, fmt.Errorf("not a pprof profile: decompress: %w", err)}
		}
		if int64(len(raw)) > maxDecompressed {
			return &failure{FailureTooLarge, fmt.Errorf("profile decompresses to more than the limit of %d bytes", maxDecompressed)}
		}
		if isGzip(raw) {
			return &failure{FailureNotPprof, errors.New("not a pprof profile: gzip inside gzip")}
		}
		data = raw
	}
	if _, err := profile.ParseData(data); err != nil {
		return &failure{FailureNotPprof, fmt.Errorf("not a pprof profile: %w", err)}
	}
	return nil
}

func isGzip(b []byte) bool { return len(b) >= 2 && b[0] == 0x1f && b[1] == 0x8b }

// classify maps a transport error to a failure reason. ctx is the capture's
// context (cancelled when the target is removed or the engine stops), reqCtx the
// request's context with its deadline.
func classify(ctx, reqCtx context.Context, doing string, err error) *failure {
	// Classify on the whole chain, but leave out the *url.Error wrapper's
	// `Get "URL":` from messages: doing already names the URL.
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		f := classify(ctx, reqCtx, doing, urlErr.Err)
		if f.reason == FailureFetchFailed && urlErr.Timeout() {
			f.reason = FailureTimeout
		}
		return f
	}
	if ctx.Err() != nil {
		cause := context.Cause(ctx)
		if errors.Is(cause, context.DeadlineExceeded) {
			return &failure{FailureTimeout, fmt.Errorf("%s: %w", doing, cause)}
		}
		return &failure{FailureCanceled, fmt.Errorf("%s: %w", doing, cause)}
	}
	if reqCtx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return &failure{FailureTimeout, fmt.Errorf("%s: timed out: %w", doing, err)}
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return &failure{FailureTimeout, fmt.Errorf("%s: timed out: %w", doing, err)}
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH),
		errors.As(err, &opErr) && opErr.Op == "dial":
		return &failure{FailureConnectFailed, fmt.Errorf("%s: %w", doing, err)}
	}
	return &failure{FailureFetchFailed, fmt.Errorf("%s: %w", doing, err)}
}

// errorBody describes the body of a non-2xx response for an error: an HTML page (a
// proxy's or an ingress's error page) by its title, or else its first line of text,
// since the markup says nothing; any other body as a sanitized excerpt.
func errorBody(resp *http.Response) string {
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxHTMLScan))
	if !isHTML(resp.Header.Get("Content-Type"), excerpt) {
		return sanitizeExcerpt(excerpt[:min(len(excerpt), maxErrorExcerpt)])
	}
	text := htmlTitle(excerpt)
	if text == "" {
		text = firstTextLine(excerpt)
	}
	if r := []rune(text); len(r) > maxHTMLSummary {
		text = string(r[:maxHTMLSummary]) + "…"
	}
	return "HTML page " + sanitizeExcerpt([]byte(text))
}

const (
	// maxHTMLScan is how much of an error body is read to find an HTML page's title.
	maxHTMLScan = 16 << 10
	// maxHTMLSummary is the longest summary of an HTML page, in characters.
	maxHTMLSummary = 120
)

var (
	htmlTitleRE = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlDropRE  = regexp.MustCompile(`(?is)<(script|style|head)[^>]*>.*?</(script|style|head)>|<!--.*?-->`)
	htmlTagRE   = regexp.MustCompile(`(?s)<[^>]*>`)
	spacesRE    = regexp.MustCompile(`[ \t\r\f\v]+`)
)

func isHTML(contentType string, body []byte) bool {
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(contentType)), "text/html") {
		return true
	}
	start := strings.ToLower(strings.TrimSpace(string(body[:min(len(body), 64)])))
	return strings.HasPrefix(start, "<!doctype html") || strings.HasPrefix(start, "<html")
}

func htmlTitle(page []byte) string {
	m := htmlTitleRE.FindSubmatch(page)
	if m == nil {
		return ""
	}
	return collapse(html.UnescapeString(htmlTagRE.ReplaceAllString(string(m[1]), " ")))
}

func firstTextLine(page []byte) string {
	text := html.UnescapeString(htmlTagRE.ReplaceAllString(htmlDropRE.ReplaceAllString(string(page), " "), "\n"))
	for line := range strings.SplitSeq(text, "\n") {
		if l := collapse(line); l != "" {
			return l
		}
	}
	return ""
}

func collapse(s string) string {
	return strings.TrimSpace(spacesRE.ReplaceAllString(strings.ReplaceAll(s, "\n", " "), " "))
}

// sanitizeExcerpt makes an untrusted body excerpt safe for errors and logs: valid
// UTF-8, control characters escaped, quoted.
func sanitizeExcerpt(b []byte) string {
	return strconv.Quote(strings.ToValidUTF8(string(b), "\uFFFD"))
}

// redactURL hides a password in rawURL, for errors and logs.
func redactURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	return u.Redacted()
}

// profileURL is the endpoint of typ below baseURL; a CPU profile asks for
// cpuSeconds of sampling.
func profileURL(baseURL string, typ ProfileType, cpuSeconds int) string {
	u := strings.TrimRight(baseURL, "/") + "/" + typ.Endpoint()
	if typ == TypeCPU {
		u += "?seconds=" + strconv.Itoa(cpuSeconds)
	}
	return u
}

// cpuSeconds is the whole number of seconds a CPU profile samples, at least 1.
func cpuSeconds(d time.Duration) int {
	return max(1, int(d/time.Second))
}
