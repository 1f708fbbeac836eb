package flight

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// roundTripper answers every request with fn.
type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestTheClientBoundsWhatItReads(t *testing.T) {
	f := newFixture(t, nil)
	now := time.Now()
	f.record(t, now.Add(-2*time.Second), now.Add(-time.Second), 5)
	req := Request{Namespace: "shop", Pod: "web-0", From: now.Add(-2 * time.Second), To: now.Add(-time.Second)}
	p, err := f.client.Fetch(t.Context(), f.srv.URL, req)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("a profile larger than MaxBytes is refused", func(t *testing.T) {
		c := *f.client
		c.MaxBytes = int64(len(p.Data)) - 1
		if _, err := c.Fetch(t.Context(), f.srv.URL, req); err == nil || !strings.Contains(err.Error(), "exceeds the limit") {
			t.Errorf("err = %v, want the limit exceeded", err)
		}
		c.MaxBytes = int64(len(p.Data))
		if _, err := c.Fetch(t.Context(), f.srv.URL, req); err != nil {
			t.Errorf("exactly MaxBytes: %v", err)
		}
	})

	// A misbehaving agent: endless bodies without a length, wrong types.
	serve := func(t *testing.T, h http.HandlerFunc) string {
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	okHeaders := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", ContentType)
		w.Header().Set(HeaderWindowStart, rfc(now))
		w.Header().Set(HeaderWindowEnd, rfc(now))
	}
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want string
	}{
		{"an endless profile stops at the limit", func(w http.ResponseWriter, _ *http.Request) {
			okHeaders(w)
			w.WriteHeader(http.StatusOK)
			for range 64 {
				if _, err := w.Write(bytes.Repeat([]byte{0x1f}, 1024)); err != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
		}, "exceeds the limit of 4096 bytes"},
		{"an endless error message is cut to its first line", func(w http.ResponseWriter, _ *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.Copy(w, io.LimitReader(zeroes{}, 1<<20))
		}, "503 Service Unavailable: "},
		{"another content type is refused", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>"))
		}, `answer of type "text/html"`},
		{"a window header must be a time", func(w http.ResponseWriter, _ *http.Request) {
			okHeaders(w)
			w.Header().Set(HeaderWindowEnd, "later")
			_, _ = w.Write([]byte{0x1f, 0x8b})
		}, `header Kprof-Window-End: "later" is not an RFC 3339 time`},
		{"a profile must be gzipped", func(w http.ResponseWriter, _ *http.Request) {
			okHeaders(w)
			_, _ = w.Write([]byte("plain"))
		}, "profile is not gzipped"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Client{Token: func(context.Context) (string, error) { return testToken, nil }, MaxBytes: 4096}
			_, err := c.Fetch(t.Context(), serve(t, tc.h), req)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
			var se *StatusError
			if errors.As(err, &se) && len(se.Message) > maxMessage {
				t.Errorf("message of %d bytes, more than %d", len(se.Message), maxMessage)
			}
		})
	}
}

type zeroes struct{}

func (zeroes) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

func TestACallWithoutADeadlineGetsOneFromTheWindowsEnd(t *testing.T) {
	var deadline time.Time
	c := Client{
		Token: func(context.Context) (string, error) { return testToken, nil },
		HTTP: &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
			d, ok := r.Context().Deadline()
			if !ok {
				return nil, errors.New("no deadline")
			}
			deadline = d
			if r.Header.Get("Authorization") != "Bearer "+testToken || r.URL.Path != "/flight/v1/pods/shop/web-0" ||
				r.URL.Query().Get("reason") != "cpu ≥ 80%" {
				return nil, errors.New("unexpected request " + r.URL.String())
			}
			return &http.Response{StatusCode: http.StatusTeapot, Body: io.NopCloser(strings.NewReader("short and stout\nmore"))}, nil
		})},
	}
	now := time.Now()
	to := now.Add(20 * time.Second)
	_, err := c.Fetch(t.Context(), "http://127.1.0.5:9092", Request{Namespace: "shop", Pod: "web-0", From: now, To: to, Reason: "cpu ≥ 80%"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != http.StatusTeapot || se.Message != "short and stout" {
		t.Fatalf("err = %v, want the agent's status and first line", err)
	}
	if want := to.Add(clientGrace); deadline.Before(want.Add(-time.Second)) || deadline.After(want.Add(time.Second)) {
		t.Errorf("deadline %s after now, want to + 30s = %s", deadline.Sub(now), want.Sub(now))
	}
	for _, bad := range []Request{
		{Pod: "web-0", From: now, To: to},
		{Namespace: "shop", Pod: "web-0", From: to, To: now},
		{Namespace: "shop", Pod: "web-0", To: to},
	} {
		if _, err := c.Fetch(t.Context(), "http://127.1.0.5:9092", bad); err == nil {
			t.Errorf("request %+v accepted", bad)
		}
	}
	if _, err := c.Fetch(t.Context(), "127.1.0.5:9092", Request{Namespace: "shop", Pod: "web-0", From: now, To: to}); err == nil || !strings.Contains(err.Error(), "want http(s)://host:port") {
		t.Errorf("a base URL without scheme: %v", err)
	}
}
