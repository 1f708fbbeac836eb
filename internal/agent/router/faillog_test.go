package router

import (
	"testing"
	"time"
)

func TestFailureLogLogsOncePerBackoffStep(t *testing.T) {
	l := newFailureLog(10 * time.Second)
	t0 := time.Unix(1_000_000, 0)
	// A consumer failing every second for an hour.
	var logged []time.Duration
	var held uint64
	for s := 0; s < 3600; s++ {
		if ok, suppressed, _ := l.allow(t0.Add(time.Duration(s) * time.Second)); ok {
			logged = append(logged, time.Duration(s)*time.Second)
			held += suppressed
		}
	}
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 150 * time.Second, 310 * time.Second,
		610 * time.Second, 910 * time.Second, 1210 * time.Second, 1510 * time.Second, 1810 * time.Second,
		2110 * time.Second, 2410 * time.Second, 2710 * time.Second, 3010 * time.Second, 3310 * time.Second}
	if len(logged) != len(want) {
		t.Fatalf("logged at %v, want %v", logged, want)
	}
	for i := range want {
		if logged[i] != want[i] {
			t.Fatalf("logged at %v, want %v (10s doubling, capped at %s)", logged, want, MaxFailureLogInterval)
		}
	}
	if int(held)+len(logged) > 3600 || held < 3600-uint64(len(logged))-300 {
		t.Errorf("%d failures reported as held back with %d logged out of 3600", held, len(logged))
	}

	t.Run("a success starts over: the next failure is logged at once", func(t *testing.T) {
		l.succeeded()
		if ok, _, quiet := l.allow(t0.Add(3601 * time.Second)); !ok || quiet != 10*time.Second {
			t.Errorf("allow after a success = %v (quiet %s), want logged with 10s until the next", ok, quiet)
		}
	})
}
