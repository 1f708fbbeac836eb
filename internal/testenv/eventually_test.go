package testenv

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEventuallyReturnsOnceTheConditionHolds(t *testing.T) {
	calls := 0
	Eventually(t, 10*time.Second, func() (bool, string) {
		calls++
		return calls >= 3, fmt.Sprintf("%d calls", calls)
	})
	if calls != 3 {
		t.Errorf("cond called %d times, want 3 (until it held, then never again)", calls)
	}
}

func TestEventuallyFailsWithTheLastReasonAfterTheTimeout(t *testing.T) {
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(done)
		n := 0
		Eventually(rec, 100*time.Millisecond, func() (bool, string) {
			n++
			return false, fmt.Sprintf("state is %d", n)
		})
	}()
	<-done
	if elapsed := time.Since(start); elapsed < 100*time.Millisecond {
		t.Errorf("gave up after %s, before the 100ms timeout", elapsed)
	}
	if !strings.Contains(rec.msg, "within 100ms") || !strings.Contains(rec.msg, "state is") {
		t.Errorf("failure %q does not give the timeout and the last reason", rec.msg)
	}
}
