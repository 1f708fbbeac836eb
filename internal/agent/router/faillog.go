package router

import (
	"sync"
	"time"

	"github.com/kprof/kprof/internal/lifecycle"
)

// MaxFailureLogInterval caps the wait between two logs of a consumer that keeps failing.
const MaxFailureLogInterval = 5 * time.Minute

// failureLog lets a consumer that keeps failing log once per backoff step: the first
// failure, then after LogInterval, twice that, ... up to MaxFailureLogInterval
// (lifecycle.Backoff, un-jittered: a log line is no retry storm), counting the
// failures it holds back. A success starts over.
type failureLog struct {
	mu         sync.Mutex
	backoff    lifecycle.Backoff
	next       time.Time // zero: the next failure is logged
	logged     int       // logs since the last success
	suppressed uint64
}

func newFailureLog(base time.Duration) *failureLog {
	return &failureLog{backoff: lifecycle.Backoff{Base: base, Max: max(base, MaxFailureLogInterval)}}
}

// allow reports whether this failure is logged, with the number held back since the
// last log and how long until the next one may be.
func (l *failureLog) allow(now time.Time) (ok bool, suppressed uint64, quiet time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.next.IsZero() && now.Before(l.next) {
		l.suppressed++
		return false, 0, 0
	}
	l.logged++
	quiet = l.backoff.Nominal(l.logged)
	l.next = now.Add(quiet)
	suppressed, l.suppressed = l.suppressed, 0
	return true, suppressed, quiet
}

// succeeded starts the backoff over: the next failure is logged at once.
func (l *failureLog) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.next, l.logged = time.Time{}, 0
}
