package capture

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/storage"
)

// waitTimeout bounds every wait for a condition. It is a safety net against a
// hung test, never an assertion about speed.
const waitTimeout = 30 * time.Second

// memStore is an in-memory storage.Store that records every Put.
type memStore struct {
	mu   sync.Mutex
	puts []storedProfile
	err  error // returned by Put when set
}

type storedProfile struct {
	key  string
	data []byte
	meta storage.Meta
}

func (s *memStore) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.puts = append(s.puts, storedProfile{key: key, data: bytes.Clone(data), meta: meta})
	return nil
}

func (s *memStore) String() string { return "mem:test" }

func (s *memStore) get(key string) (storedProfile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.puts {
		if p.key == key {
			return p, true
		}
	}
	return storedProfile{}, false
}

// recorder collects Results from OnResult and lets a test wait for a condition.
type recorder struct {
	mu      sync.Mutex
	results []Result
	notify  chan struct{}
}

func newRecorder() *recorder { return &recorder{notify: make(chan struct{}, 1)} }

func (r *recorder) add(res Result) {
	r.mu.Lock()
	r.results = append(r.results, res)
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) snapshot() []Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Result(nil), r.results...)
}

// waitFor blocks until cond holds for the results so far and returns them.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]Result) bool) []Result {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		rs := r.snapshot()
		if cond(rs) {
			return rs
		}
		select {
		case <-r.notify:
		case <-deadline.C:
			t.Fatalf("gave up waiting for %s; results so far:\n%s", what, describe(rs))
		}
	}
}

func describe(rs []Result) string {
	var b strings.Builder
	for _, r := range rs {
		fmt.Fprintf(&b, "  %s %s %s reason=%q failure=%q err=%v\n", r.Group, r.Target.ID, r.Type, r.Reason, r.FailureReason, r.Err)
	}
	return b.String()
}

// matching returns the results of target id (and type typ, when not empty).
func matching(rs []Result, id string, typ ProfileType) []Result {
	var out []Result
	for _, r := range rs {
		if r.Target.ID == id && (typ == "" || r.Type == typ) {
			out = append(out, r)
		}
	}
	return out
}

// hasSuccess reports whether target id got a successful capture of every type.
func hasSuccess(rs []Result, id string, types ...ProfileType) bool {
	for _, typ := range types {
		ok := false
		for _, r := range matching(rs, id, typ) {
			if r.Err == nil {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// waitUntil polls cond until it holds; for state that has no notification (metrics).
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// recv receives from ch or fails the test after waitTimeout.
func recv[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("gave up waiting for %s", what)
		panic("unreachable")
	}
}

// pprofTarget is a real Go pprof server (net/http/pprof handlers, in process)
// that records what it served and lets a test wrap individual endpoints.
type pprofTarget struct {
	srv      *httptest.Server
	requests atomic.Int64
	mu       sync.Mutex
	served   map[string][][]byte // request URI → bodies written by the handler
	// quit is closed before the server closes, to release handlers a test blocks.
	quit chan struct{}
}

// newPprofTarget starts a pprof server. wrap, when set, may replace the handler
// of a path (below /debug/pprof/) by returning a non-nil handler.
func newPprofTarget(t *testing.T, wrap func(path string, real http.Handler) http.Handler) *pprofTarget {
	t.Helper()
	pt := &pprofTarget{served: make(map[string][][]byte), quit: make(chan struct{})}
	mux := http.NewServeMux()
	handle := func(path string, h http.Handler) {
		if wrap != nil {
			if w := wrap(path, h); w != nil {
				h = w
			}
		}
		mux.Handle(path, pt.tee(h))
	}
	handle("/debug/pprof/", http.HandlerFunc(pprof.Index))
	handle("/debug/pprof/profile", http.HandlerFunc(pprof.Profile))
	pt.srv = httptest.NewServer(mux)
	t.Cleanup(pt.srv.Close)
	t.Cleanup(func() { close(pt.quit) }) // runs before Close (cleanups are LIFO)
	return pt
}

func (pt *pprofTarget) base() string { return pt.srv.URL + "/debug/pprof" }

func (pt *pprofTarget) target(id string) Target {
	return Target{ID: id, BaseURL: pt.base(), Meta: storage.Meta{Namespace: "ns", Pod: id, Service: "svc"}}
}

func (pt *pprofTarget) servedBodies(uri string) [][]byte {
	pt.mu.Lock()
	defer pt.mu.Unlock()
	return pt.served[uri]
}

// tee records every body the wrapped handler writes, before the response ends.
func (pt *pprofTarget) tee(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pt.requests.Add(1)
		tw := &teeWriter{ResponseWriter: w}
		h.ServeHTTP(tw, r)
		pt.mu.Lock()
		pt.served[r.URL.RequestURI()] = append(pt.served[r.URL.RequestURI()], tw.buf.Bytes())
		pt.mu.Unlock()
	})
}

type teeWriter struct {
	http.ResponseWriter
	buf bytes.Buffer
}

func (w *teeWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.buf.Write(p[:n])
	return n, err
}

func (w *teeWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// newTestEngine builds an engine whose results go to a recorder, and shuts it
// down at cleanup. Start is left to the test.
func newTestEngine(t *testing.T, cfg Config) (*Engine, *recorder) {
	t.Helper()
	rec := newRecorder()
	next := cfg.OnResult
	cfg.OnResult = func(r Result) {
		rec.add(r)
		if next != nil {
			next(r)
		}
	}
	cfg.Logger = logtest.New(t)
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Shutdown at cleanup: %v", err)
		}
	})
	return e, rec
}

func startEngine(t *testing.T, cfg Config) (*Engine, *recorder) {
	t.Helper()
	e, rec := newTestEngine(t, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return e, rec
}
