package capture

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

func TestTrigger(t *testing.T) {
	t.Run("a triggered round captures every type with the trigger's reason", func(t *testing.T) {
		srv := newPprofTarget(t, nil)
		e, rec := startEngine(t, Config{})
		p := Policy{Types: []ProfileType{TypeHeap, TypeGoroutine}, Store: &memStore{}}
		e.Sync("g", p, []Target{srv.target("a")})
		if err := e.Trigger(context.Background(), "g", "a", "threshold: cpu 93% of request ≥ 80%"); err != nil {
			t.Fatalf("Trigger: %v", err)
		}
		rs := rec.snapshot()
		if !hasSuccess(rs, "a", TypeHeap, TypeGoroutine) {
			t.Fatalf("results: %s", describe(rs))
		}
		for _, r := range rs {
			if r.Reason != "threshold: cpu 93% of request ≥ 80%" {
				t.Errorf("%s reason = %q", r.Type, r.Reason)
			}
		}
	})

	t.Run("an unknown target is an error", func(t *testing.T) {
		e, _ := startEngine(t, Config{})
		if err := e.Trigger(context.Background(), "g", "nope", "x"); !errors.Is(err, ErrUnknownTarget) {
			t.Fatalf("err = %v, want ErrUnknownTarget", err)
		}
	})

	t.Run("a trigger during a running round starts no second round", func(t *testing.T) {
		inCPU := make(chan struct{}, 1)
		release := make(chan struct{})
		var cpuRequests atomic.Int32
		srv := newPprofTarget(t, func(path string, real http.Handler) http.Handler {
			if path != "/debug/pprof/profile" {
				return nil
			}
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				cpuRequests.Add(1)
				inCPU <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				http.Error(w, "released", http.StatusServiceUnavailable)
			})
		})
		e, _ := startEngine(t, Config{})
		p := Policy{Types: []ProfileType{TypeCPU}, CPUDuration: time.Second, Store: &memStore{}}
		e.Sync("g", p, []Target{srv.target("a")})
		first := make(chan error, 1)
		go func() { first <- e.Trigger(context.Background(), "g", "a", "first") }()
		recv(t, "the first round's CPU request", inCPU)
		if err := e.Trigger(context.Background(), "g", "a", "second"); !errors.Is(err, ErrRoundInFlight) {
			t.Fatalf("second Trigger = %v, want ErrRoundInFlight", err)
		}
		close(release)
		if err := recv(t, "the first Trigger to return", first); err == nil {
			t.Fatal("first Trigger returned nil although its capture failed")
		}
		if n := cpuRequests.Load(); n != 1 {
			t.Fatalf("%d CPU profile requests, want 1", n)
		}
	})

	t.Run("a trigger pushes the next scheduled round one interval away", func(t *testing.T) {
		srv := newPprofTarget(t, nil)
		e, rec := startEngine(t, Config{Jitter: 0.1})
		const interval = 400 * time.Millisecond
		p := Policy{Types: []ProfileType{TypeHeap}, Interval: interval, Store: &memStore{}}
		e.Sync("g", p, []Target{srv.target("a")})
		scheduled := func(rs []Result) []Result {
			var out []Result
			for _, r := range rs {
				if r.Reason == ReasonSchedule {
					out = append(out, r)
				}
			}
			return out
		}
		rec.waitFor(t, "the first scheduled round", func(rs []Result) bool { return len(scheduled(rs)) >= 1 })
		// Half an interval later, a trigger: without the push, the next scheduled
		// round would follow about half an interval after it.
		time.Sleep(interval / 2)
		triggered := time.Now()
		if err := e.Trigger(context.Background(), "g", "a", "threshold"); err != nil {
			t.Fatal(err)
		}
		// On a loaded machine the sleep can overshoot past the unpushed next round;
		// what the trigger moves is the first scheduled round after it.
		after := func(rs []Result) []Result {
			var out []Result
			for _, r := range scheduled(rs) {
				if r.Started.After(triggered) {
					out = append(out, r)
				}
			}
			return out
		}
		rs := rec.waitFor(t, "the next scheduled round", func(rs []Result) bool { return len(after(rs)) >= 1 })
		next := after(rs)[0].Started
		if gap := next.Sub(triggered); gap < interval*9/10 {
			t.Fatalf("next scheduled round %s after the trigger, want at least %s (one interval less jitter)", gap, interval*9/10)
		}
	})
}
