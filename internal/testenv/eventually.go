package testenv

import (
	"testing"
	"time"
)

// pollEvery is how often Eventually checks its condition.
const pollEvery = 20 * time.Millisecond

// Eventually polls cond until it reports true, and fails the test after
// timeout with the last reason cond gave. Use it to wait for the state a test
// checks, rather than for a log line, a sleep or another component's signal
// that only precedes that state.
func Eventually(t testing.TB, timeout time.Duration, cond func() (ok bool, why string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not so within %s: %s", timeout, why)
			return
		}
		time.Sleep(pollEvery)
	}
}
