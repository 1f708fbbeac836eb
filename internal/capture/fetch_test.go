package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"
	"net/http/httptest"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
)

func gzipBytes(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// realHeap returns a heap profile as this Go process serves it (gzip'd protobuf).
func realHeap(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestFetchEdgeCases covers responses a real pprof server does not produce, with
// plain handlers serving them.
func TestFetchEdgeCases(t *testing.T) {
	heap := realHeap(t)
	parsed, err := profile.ParseData(heap)
	if err != nil {
		t.Fatal(err)
	}
	var uncompressed bytes.Buffer
	if err := parsed.WriteUncompressed(&uncompressed); err != nil {
		t.Fatal(err)
	}
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(heap) }))
	t.Cleanup(other.Close)
	stall := make(chan struct{})
	t.Cleanup(func() { close(stall) })

	tests := []struct {
		name       string
		cfg        Config
		serve      http.HandlerFunc
		wantReason string // "" for success
		wantErr    string
		wantStored []byte // for successes
	}{
		{
			name:       "a gzip bomb is cut off at MaxDecompressedBytes",
			cfg:        Config{MaxProfileBytes: 1 << 20, MaxDecompressedBytes: 1 << 20},
			serve:      func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(gzipBytes(t, make([]byte, 16<<20))) },
			wantReason: FailureTooLarge,
			wantErr:    "decompresses to more than the limit of 1048576 bytes",
		},
		{
			name:       "gzip inside gzip is not pprof",
			serve:      func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(gzipBytes(t, heap)) },
			wantReason: FailureNotPprof,
			wantErr:    "gzip inside gzip",
		},
		{
			name:       "a truncated profile is not pprof",
			serve:      func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(heap[:len(heap)/2]) },
			wantReason: FailureNotPprof,
			wantErr:    "not a pprof profile",
		},
		{
			name:       "an empty body is not pprof",
			serve:      func(http.ResponseWriter, *http.Request) {},
			wantReason: FailureNotPprof,
			wantErr:    "empty input",
		},
		{
			name: "a Content-Length above the limit fails before the body is read",
			cfg:  Config{MaxProfileBytes: 1024},
			serve: func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(4096))
				_, _ = w.Write(make([]byte, 4096))
			},
			wantReason: FailureTooLarge,
			wantErr:    "Content-Length 4096 exceeds the limit of 1024 bytes",
		},
		{
			name: "a body that stalls after the headers times out",
			cfg:  Config{RequestTimeout: 200 * time.Millisecond},
			serve: func(w http.ResponseWriter, r *http.Request) {
				_, _ = w.Write(heap[:10])
				w.(http.Flusher).Flush()
				select {
				case <-r.Context().Done():
				case <-stall:
				}
			},
			wantReason: FailureTimeout,
			wantErr:    "read body of",
		},
		{
			name: "a redirect to another host is refused",
			serve: func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, other.URL+"/debug/pprof/heap", http.StatusFound)
			},
			wantReason: FailureFetchFailed,
			wantErr:    "redirect to another host",
		},
		{
			name: "a redirect on the same host is followed",
			serve: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/moved/heap" {
					_, _ = w.Write(heap)
					return
				}
				http.Redirect(w, r, "/moved/heap", http.StatusMovedPermanently)
			},
			wantStored: heap,
		},
		{
			name:       "an uncompressed pprof protobuf is accepted and stored as served",
			serve:      func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(uncompressed.Bytes()) },
			wantStored: uncompressed.Bytes(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(tt.serve)
			t.Cleanup(srv.Close)
			store := &memStore{}
			e, _ := newTestEngine(t, tt.cfg)
			target := Target{ID: "t", BaseURL: srv.URL + "/debug/pprof/"}
			rs := e.CaptureNow(context.Background(), "g", target, Policy{Types: []ProfileType{TypeHeap}, Store: store}, "")
			if len(rs) != 1 {
				t.Fatalf("got %d results, want 1", len(rs))
			}
			r := rs[0]
			if r.FailureReason != tt.wantReason {
				t.Fatalf("FailureReason = %q (err %v), want %q", r.FailureReason, r.Err, tt.wantReason)
			}
			if tt.wantReason != "" {
				if r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want it to contain %q", r.Err, tt.wantErr)
				}
				if len(store.puts) != 0 {
					t.Errorf("a failed capture stored %d profiles", len(store.puts))
				}
				return
			}
			got, ok := store.get(r.Key)
			if !ok || !bytes.Equal(got.data, tt.wantStored) {
				t.Errorf("stored %d bytes under %q, want the %d bytes served", len(got.data), r.Key, len(tt.wantStored))
			}
		})
	}
}

func TestProfileURL(t *testing.T) {
	tests := []struct {
		name string
		base string
		typ  ProfileType
		cpu  time.Duration
		want string
	}{
		{name: "a heap URL appends the type", base: "http://h:6060/debug/pprof", typ: TypeHeap, want: "http://h:6060/debug/pprof/heap"},
		{name: "a trailing slash on the base is not doubled", base: "http://h:6060/debug/pprof/", typ: TypeGoroutine, want: "http://h:6060/debug/pprof/goroutine"},
		{name: "a CPU URL asks for whole seconds", base: "http://h/debug/pprof", typ: TypeCPU, cpu: 2500 * time.Millisecond, want: "http://h/debug/pprof/profile?seconds=2"},
		{name: "a CPU URL asks for at least one second", base: "http://h/debug/pprof", typ: TypeCPU, cpu: 0, want: "http://h/debug/pprof/profile?seconds=1"},
		{name: "a thread-creation URL uses its endpoint", base: "http://h/p", typ: TypeThreadCreate, want: "http://h/p/threadcreate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := profileURL(tt.base, tt.typ, cpuSeconds(tt.cpu)); got != tt.want {
				t.Errorf("profileURL = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorsHideURLPasswords(t *testing.T) {
	e, _ := newTestEngine(t, Config{RequestTimeout: time.Second})
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	base := strings.Replace(closed.URL, "http://", "http://user:s3cret@", 1)
	rs := e.CaptureNow(context.Background(), "g", Target{ID: "t", BaseURL: base}, Policy{Types: []ProfileType{TypeHeap}, Store: &memStore{}}, "")
	if len(rs) != 1 || rs[0].Err == nil {
		t.Fatalf("want one failed result, got:\n%s", describe(rs))
	}
	if msg := rs[0].Err.Error(); strings.Contains(msg, "s3cret") {
		t.Errorf("error %q reveals the URL password", msg)
	}
}
