package capture

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

func TestThousandsOfTargetsCostNoGoroutineEach(t *testing.T) {
	const targets = 5000
	e, _ := startEngine(t, Config{MaxConcurrent: 4})
	before := runtime.NumGoroutine()
	ts := make([]Target, targets)
	for i := range ts {
		ts[i] = Target{ID: fmt.Sprintf("pod-%d", i), BaseURL: "http://127.0.0.1:1"}
	}
	// An interval long enough that no round comes due while the test looks.
	p := Policy{Types: []ProfileType{TypeHeap}, Interval: time.Hour, Store: &memStore{}}
	e.Sync("g", p, ts)
	if n := e.TargetCount("g"); n != targets {
		t.Fatalf("%d targets synced, want %d", n, targets)
	}
	if grown := runtime.NumGoroutine() - before; grown > 50 {
		t.Errorf("%d targets added %d goroutines, want a bounded number whatever the targets", targets, grown)
	}
	e.sched.mu.Lock()
	scheduled := len(e.sched.heap)
	e.sched.mu.Unlock()
	if scheduled != targets {
		t.Errorf("%d targets in the schedule, want %d", scheduled, targets)
	}

	t.Run("removing them takes them out of the schedule", func(t *testing.T) {
		e.Sync("g", p, ts[:10])
		e.Remove("g")
		e.sched.mu.Lock()
		defer e.sched.mu.Unlock()
		if n := len(e.sched.heap); n != 0 {
			t.Errorf("%d targets left in the schedule after the group was removed", n)
		}
	})
}
