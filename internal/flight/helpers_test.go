package flight

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/recorder"
)

const testToken = "4f1c0ffee"

// recorderSource serves a real recorder, as the agent does, and counts the
// waits in progress.
type recorderSource struct {
	r       *recorder.Recorder
	waiting atomic.Int32
}

func (s *recorderSource) WaitFlushed(ctx context.Context, t time.Time) error {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	return s.r.WaitFlushed(ctx, t)
}

func (s *recorderSource) Interval() time.Duration { return s.r.Interval() }

func (s *recorderSource) Profile(ns, pod string, from, to time.Time, reason string) (Profile, error) {
	data, w, err := s.r.Profile(ns, pod, from, to, reason)
	if errors.Is(err, recorder.ErrNotRecorded) {
		return Profile{}, &StatusError{Code: http.StatusNotFound, Message: err.Error()}
	}
	if err != nil {
		return Profile{}, err
	}
	return Profile{Data: data, Start: w.Start, End: w.End}, nil
}

// fixture is an agent's flight endpoint over a real recorder, on node-a,
// where pods shop/web-0 and shop/idle-0 run.
type fixture struct {
	rec       *recorder.Recorder
	src       *recorderSource
	srv       *httptest.Server
	tokenFile string
	client    *Client
}

func newFixture(t *testing.T, mutate func(*HandlerConfig)) *fixture {
	t.Helper()
	rec, err := recorder.New(recorder.Config{Window: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{rec: rec, src: &recorderSource{r: rec}, tokenFile: filepath.Join(t.TempDir(), "token")}
	writeToken(t, f.tokenFile, testToken+"\n")
	cfg := HandlerConfig{
		Node:   "node-a",
		Source: f.src,
		Token:  FileToken(f.tokenFile),
		Locate: func(ns, pod string) error {
			if ns == "shop" && (pod == "web-0" || pod == "idle-0") {
				return nil
			}
			return ErrPodNotOnNode
		},
	}
	if mutate != nil {
		mutate(&cfg)
	}
	h, err := NewHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	f.client = &Client{HTTP: f.srv.Client(), Token: func(context.Context) (string, error) { return testToken, nil }}
	return f
}

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
}

// record consumes one interval [start, end) with n samples of main.hot in shop/web-0.
func (f *fixture) record(t *testing.T, start, end time.Time, n uint64) {
	t.Helper()
	ev := &profile.Event{
		Config: "cpu", EventName: "cpu-clock", Frequency: 100, Start: start, End: end,
		Labels: map[string]string{"node": "node-a"},
	}
	if n > 0 {
		ev.Samples = []profile.Sample{{
			PID: 7, TID: 7, Count: n, CPUTime: time.Duration(n) * 10 * time.Millisecond,
			Frames: []profile.Frame{{Address: 0x401000, Function: "main.hot"}},
			Labels: map[string]string{"namespace": "shop", "pod": "web-0", "container": "app", "comm": "web"},
		}}
	}
	if err := f.rec.Consume(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
}

// get sends a raw GET with the token and returns the status and body.
func (f *fixture) get(t *testing.T, path string, header map[string]string) (int, string, http.Header) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body), resp.Header
}

// oneLine checks an error answer is a single line of text.
func oneLine(t *testing.T, body string, hdr http.Header) {
	t.Helper()
	if !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", hdr.Get("Content-Type"))
	}
	if strings.Count(body, "\n") != 1 || !strings.HasSuffix(body, "\n") || len(strings.TrimSpace(body)) == 0 {
		t.Errorf("body %q is not one line", body)
	}
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
