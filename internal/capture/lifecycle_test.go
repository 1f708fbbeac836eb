package capture

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// blockingHeap wraps the heap endpoint: each request announces itself on
// arrived, then waits for release (when not nil), its own cancellation or the
// server's quit, then reports whether its context ended on ctxDone and serves
// the real heap profile.
func blockingHeap(arrived chan<- struct{}, release <-chan struct{}, ctxDone chan<- error, quit *<-chan struct{}) func(string, http.Handler) http.Handler {
	return func(path string, real http.Handler) http.Handler {
		if path != "/debug/pprof/" {
			return nil
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			arrived <- struct{}{}
			select {
			case <-release:
			case <-r.Context().Done():
			case <-*quit:
			}
			if ctxDone != nil {
				select {
				case ctxDone <- r.Context().Err():
				default:
				}
			}
			real.ServeHTTP(w, r)
		})
	}
}

func newBlockingTarget(t *testing.T, arrived chan<- struct{}, release <-chan struct{}, ctxDone chan<- error) *pprofTarget {
	t.Helper()
	var quit <-chan struct{}
	srv := newPprofTarget(t, blockingHeap(arrived, release, ctxDone, &quit))
	quit = srv.quit
	return srv
}

func TestSyncRemovingATargetCancelsItsInFlightCPUCapture(t *testing.T) {
	started := make(chan struct{}, 1)
	finished := make(chan error, 1)
	srv := newPprofTarget(t, func(path string, real http.Handler) http.Handler {
		if path != "/debug/pprof/profile" {
			return nil
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case started <- struct{}{}:
			default:
			}
			real.ServeHTTP(w, r) // the real CPU profile handler, sampling for 60s unless cancelled
			select {
			case finished <- r.Context().Err():
			default:
			}
		})
	})
	e, rec := startEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeCPU, TypeHeap}, CPUDuration: time.Minute, Interval: 50 * time.Millisecond, Store: &memStore{}}
	e.Sync("g", p, []Target{srv.target("victim")})
	recv(t, "the CPU profile request to reach the target", started)

	e.Sync("g", p, nil)

	rs := rec.waitFor(t, "both types of the removed target to report", func(rs []Result) bool {
		return len(matching(rs, "victim", "")) >= 2
	})
	for _, r := range matching(rs, "victim", "")[:2] {
		if r.FailureReason != FailureCanceled || r.Err == nil || !strings.Contains(r.Err.Error(), "target removed") {
			t.Errorf("%s: FailureReason %q err %v, want Canceled because the target was removed", r.Type, r.FailureReason, r.Err)
		}
		if !errors.Is(r.Err, context.Canceled) {
			t.Errorf("%s: err %v does not wrap context.Canceled", r.Type, r.Err)
		}
	}
	if err := recv(t, "the CPU profile handler to return", finished); err == nil {
		t.Error("the target's CPU profile request was not cancelled")
	}
	if n := e.TargetCount("g"); n != 0 {
		t.Errorf("TargetCount = %d, want 0", n)
	}
}

func TestRemoveStopsTheGroupsCaptures(t *testing.T) {
	arrived := make(chan struct{}, 16)
	ctxDone := make(chan error, 1)
	doomed := newBlockingTarget(t, arrived, nil, ctxDone)
	clock := newPprofTarget(t, nil)
	e, rec := startEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeHeap}, Interval: 20 * time.Millisecond, Store: &memStore{}}
	e.Sync("doomed", p, []Target{doomed.target("d")})
	recv(t, "the doomed target's request", arrived)

	e.Remove("doomed")

	rs := rec.waitFor(t, "the doomed capture to report", func(rs []Result) bool { return len(matching(rs, "d", "")) > 0 })
	if r := matching(rs, "d", "")[0]; r.FailureReason != FailureCanceled || !strings.Contains(r.Err.Error(), "group removed") {
		t.Errorf("doomed capture: FailureReason %q err %v, want Canceled because the group was removed", r.FailureReason, r.Err)
	}
	if err := recv(t, "the doomed request to end", ctxDone); err == nil {
		t.Error("the doomed request's context did not end")
	}
	requests := doomed.requests.Load()

	// Another group's rounds serve as the clock: after several of them, a
	// schedule left running for the removed group would have fired again.
	e.Sync("clock", p, []Target{clock.target("c")})
	rec.waitFor(t, "five rounds of the clock group", func(rs []Result) bool { return len(matching(rs, "c", "")) >= 5 })
	if got := doomed.requests.Load(); got != requests {
		t.Errorf("removed group's target got %d more requests, want none", got-requests)
	}
	if got := e.Groups(); len(got) != 1 || got[0] != "clock" {
		t.Errorf("Groups() = %v, want [clock]", got)
	}
}

func TestCaptureNowOfASyncedTargetIsCancelledWhenTheTargetIsRemoved(t *testing.T) {
	arrived := make(chan struct{}, 1)
	srv := newBlockingTarget(t, arrived, nil, nil)
	e, _ := newTestEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeHeap}, Store: &memStore{}} // Interval 0: only CaptureNow
	e.Sync("g", p, []Target{srv.target("t")})

	done := make(chan []Result, 1)
	go func() { done <- e.CaptureNow(context.Background(), "g", srv.target("t"), p, "threshold") }()
	recv(t, "the CaptureNow request", arrived)
	e.Sync("g", p, nil)

	rs := recv(t, "CaptureNow to return", done)
	if len(rs) != 1 || rs[0].FailureReason != FailureCanceled || !strings.Contains(rs[0].Err.Error(), "target removed") {
		t.Fatalf("CaptureNow results:\n%s want one Canceled because the target was removed", describe(rs))
	}
}

func TestShutdownLetsInFlightCapturesFinish(t *testing.T) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := newBlockingTarget(t, arrived, release, nil)
	e, rec := startEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeHeap}, Interval: 20 * time.Millisecond, Store: &memStore{}}
	e.Sync("g", p, []Target{srv.target("t")})
	recv(t, "the request to reach the target", arrived)

	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- e.Shutdown(context.Background()) }()
	recv(t, "Shutdown to stop scheduling", e.stopSched)
	select {
	case err := <-shutdownErr:
		t.Fatalf("Shutdown returned (%v) while a capture was still in flight", err)
	default:
	}
	close(release)
	if err := recv(t, "Shutdown to return", shutdownErr); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	rs := rec.snapshot() // OnResult must have run before Shutdown returned
	if !hasSuccess(rs, "t", TypeHeap) {
		t.Fatalf("the in-flight capture did not complete before Shutdown returned:\n%s", describe(rs))
	}

	t.Run("after shutdown CaptureNow fails as Canceled", func(t *testing.T) {
		got := e.CaptureNow(context.Background(), "g", srv.target("t"), p, "")
		if len(got) != 1 || got[0].FailureReason != FailureCanceled || !strings.Contains(got[0].Err.Error(), "shut down") {
			t.Errorf("CaptureNow after Shutdown:\n%s want one Canceled", describe(got))
		}
	})
	t.Run("after shutdown Sync is ignored", func(t *testing.T) {
		e.Sync("late", p, []Target{srv.target("x")})
		if n := e.TargetCount("late"); n != 0 {
			t.Errorf("TargetCount(late) = %d, want 0", n)
		}
	})
	t.Run("after shutdown Start fails", func(t *testing.T) {
		if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "shut down") {
			t.Errorf("Start after Shutdown = %v, want an error saying it is shut down", err)
		}
	})
}

func TestShutdownCancelsCapturesWhenItsContextEnds(t *testing.T) {
	arrived := make(chan struct{}, 16)
	ctxDone := make(chan error, 1)
	srv := newBlockingTarget(t, arrived, nil, ctxDone)
	e, rec := startEngine(t, Config{})
	e.Sync("g", Policy{Types: []ProfileType{TypeHeap}, Interval: 20 * time.Millisecond, Store: &memStore{}}, []Target{srv.target("t")})
	recv(t, "the request to reach the target", arrived)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := e.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "cancelled") {
		t.Fatalf("Shutdown with a done context = %v, want an error saying captures were cancelled", err)
	}
	rs := matching(rec.snapshot(), "t", TypeHeap)
	if len(rs) != 1 || rs[0].FailureReason != FailureCanceled || !strings.Contains(rs[0].Err.Error(), "shut down") {
		t.Fatalf("results when Shutdown returned:\n%s want exactly one Canceled by the shutdown", describe(rs))
	}
	if err := recv(t, "the target to see its request end", ctxDone); err == nil {
		t.Error("the target's request context did not end")
	}
}

func TestLifecycle(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, e *Engine, rec *recorder)
	}{
		{
			name: "Shutdown without Start returns nil, twice",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				for i := range 2 {
					if err := e.Shutdown(context.Background()); err != nil {
						t.Errorf("Shutdown #%d = %v", i+1, err)
					}
				}
			},
		},
		{
			name: "Shutdown after Start returns nil, twice",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				if err := e.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				for i := range 2 {
					if err := e.Shutdown(context.Background()); err != nil {
						t.Errorf("Shutdown #%d = %v", i+1, err)
					}
				}
			},
		},
		{
			name: "concurrent Shutdowns all return nil",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				if err := e.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				errs := make(chan error, 4)
				for range 4 {
					wg.Go(func() { errs <- e.Shutdown(context.Background()) })
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Errorf("Shutdown = %v", err)
					}
				}
			},
		},
		{
			name: "a second Start fails",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				if err := e.Start(context.Background()); err != nil {
					t.Fatal(err)
				}
				if err := e.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
					t.Errorf("second Start = %v, want an already-started error", err)
				}
			},
		},
		{
			name: "Start with a done context fails",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				if err := e.Start(ctx); !errors.Is(err, context.Canceled) {
					t.Errorf("Start = %v, want context.Canceled", err)
				}
			},
		},
		{
			name: "Start does not keep its context for background work",
			run: func(t *testing.T, e *Engine, rec *recorder) {
				srv := newPprofTarget(t, nil)
				ctx, cancel := context.WithCancel(context.Background())
				if err := e.Start(ctx); err != nil {
					t.Fatal(err)
				}
				cancel()
				e.Sync("g", Policy{Types: []ProfileType{TypeGoroutine}, Interval: 20 * time.Millisecond, Store: &memStore{}}, []Target{srv.target("t")})
				rec.waitFor(t, "a capture after Start's context ended", func(rs []Result) bool { return hasSuccess(rs, "t", TypeGoroutine) })
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rec := newTestEngine(t, Config{})
			tt.run(t, e, rec)
		})
	}
}
