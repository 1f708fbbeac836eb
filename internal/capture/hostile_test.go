package capture

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// endlessStream writes without end until the client goes away, then reports
// how many bytes it managed to write.
func endlessStream(written chan<- int64, quit <-chan struct{}) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 32<<10)
		var n int64
		defer func() {
			select {
			case written <- n:
			default:
			}
		}()
		for {
			select {
			case <-quit:
				return
			default:
			}
			m, err := w.Write(chunk)
			n += int64(m)
			if err != nil {
				return
			}
		}
	})
}

func TestHostileTargetsFailWithoutHurtingHealthyOnes(t *testing.T) {
	const streamLimit = 1 << 20
	tests := []struct {
		name string
		cfg  Config
		// handler serves every path of the hostile target; nil means the target's
		// address refuses connections.
		handler    func(quit <-chan struct{}, written chan<- int64) http.Handler
		wantReason string
		wantErr    []string
	}{
		{
			name: "a target that never answers times out",
			cfg:  Config{RequestTimeout: 300 * time.Millisecond},
			handler: func(quit <-chan struct{}, _ chan<- int64) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					select {
					case <-r.Context().Done():
					case <-quit:
					}
				})
			},
			wantReason: FailureTimeout,
			wantErr:    []string{"timed out"},
		},
		{
			name: "a target answering 500 fails with the status and a sanitized, capped excerpt",
			cfg:  Config{RequestTimeout: 300 * time.Millisecond},
			handler: func(<-chan struct{}, chan<- int64) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = w.Write([]byte("boom\x00\x1b[31mred\n" + strings.Repeat("A", 8<<10)))
				})
			},
			wantReason: FailureHTTPStatus,
			wantErr:    []string{"HTTP status 500", `boom\x00\x1b[31mred\n`},
		},
		{
			name: "a target serving bytes that are not pprof fails as NotPprof",
			cfg:  Config{RequestTimeout: 300 * time.Millisecond},
			handler: func(<-chan struct{}, chan<- int64) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					_, _ = w.Write([]byte("hello, I am not a profile"))
				})
			},
			wantReason: FailureNotPprof,
			wantErr:    []string{"not a pprof profile"},
		},
		{
			name:       "a target streaming without end is cut off at the size limit",
			cfg:        Config{RequestTimeout: 30 * time.Second, MaxProfileBytes: streamLimit},
			handler:    func(quit <-chan struct{}, written chan<- int64) http.Handler { return endlessStream(written, quit) },
			wantReason: FailureTooLarge,
			wantErr:    []string{"exceeds the limit of 1048576 bytes"},
		},
		{
			name:       "a target refusing connections fails as ConnectFailed",
			cfg:        Config{RequestTimeout: 300 * time.Millisecond},
			wantReason: FailureConnectFailed,
			wantErr:    []string{"connection refused"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			healthy := newPprofTarget(t, nil)
			written := make(chan int64, 1)
			var hostile Target
			if tt.handler == nil {
				closed := httptest.NewServer(http.NotFoundHandler())
				closed.Close()
				hostile = Target{ID: "hostile", BaseURL: closed.URL + "/debug/pprof"}
			} else {
				var quit <-chan struct{}
				srv := newPprofTarget(t, func(string, http.Handler) http.Handler { return tt.handler(quit, written) })
				quit = srv.quit
				hostile = srv.target("hostile")
			}
			hostile.Meta.Namespace, hostile.Meta.Pod = "ns", "hostile"

			e, rec := startEngine(t, tt.cfg)
			p := Policy{Types: []ProfileType{TypeHeap, TypeGoroutine}, Interval: 200 * time.Millisecond, Store: &memStore{}}
			e.Sync("g", p, []Target{healthy.target("healthy"), hostile})

			rs := rec.waitFor(t, "a failed heap capture of the hostile target and both profiles of the healthy one", func(rs []Result) bool {
				return len(matching(rs, "hostile", TypeHeap)) > 0 && hasSuccess(rs, "healthy", TypeHeap, TypeGoroutine)
			})
			r := matching(rs, "hostile", TypeHeap)[0]
			if r.Err == nil || r.FailureReason != tt.wantReason {
				t.Fatalf("hostile heap capture: FailureReason %q, err %v; want %s", r.FailureReason, r.Err, tt.wantReason)
			}
			msg := r.Err.Error()
			if !strings.HasPrefix(msg, "capture ns/hostile heap: ") {
				t.Errorf("error %q does not say which target and type failed", msg)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not contain %q", msg, want)
				}
			}
			if len(msg) > 1024 {
				t.Errorf("error is %d bytes long, want the body excerpt capped", len(msg))
			}
			if r.Key != "" || r.Bytes != 0 {
				t.Errorf("failed capture has Key %q and Bytes %d, want none", r.Key, r.Bytes)
			}
			if tt.wantReason == FailureTooLarge {
				// What the server got out before the client hung up: the limit plus
				// what fits in the socket buffers, not an unbounded stream.
				n := recv(t, "the endless stream to see its client go away", written)
				if max := int64(streamLimit + 16<<20); n > max {
					t.Errorf("server wrote %d bytes before the client went away, want at most %d", n, max)
				}
				t.Logf("endless stream wrote %d bytes before the client went away", n)
			}
		})
	}
}
