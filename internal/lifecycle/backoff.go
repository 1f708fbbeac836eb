package lifecycle

import (
	"math/rand/v2"
	"time"
)

// Backoff is the wait of a retry loop whose attempts keep failing: Base after the
// first failure, doubling with each further failure in a row, capped at Max.
//
// The jitter rule, kprof's only one ("equal jitter"): the wait after the n-th
// failure is uniform in [d/2, d] with d = Nominal(n). The lower half keeps a retry
// from firing at once, so a loop really backs off; the randomness spreads the
// retries of many agents or workers that failed together (an outage) over half the
// window; the upper bound is the nominal delay, so the bounds a config documents
// (RetryMaxDelay, MaxBackoff) hold.
type Backoff struct {
	Base, Max time.Duration
}

// Nominal is the un-jittered wait after the n-th failure in a row (n counts from 1;
// less counts as 1): min(Max, Base·2^(n-1)), 0 when either is not positive.
func (b Backoff) Nominal(n int) time.Duration {
	if b.Base <= 0 || b.Max <= 0 {
		return 0
	}
	shift := max(n, 1) - 1
	if shift < 63 && b.Base <= b.Max>>shift {
		return b.Base << shift
	}
	return b.Max
}

// Delay is the jittered wait after the n-th failure in a row: uniform in [d/2, d]
// with d = Nominal(n).
func (b Backoff) Delay(n int) time.Duration {
	d := b.Nominal(n)
	if d <= 0 {
		return 0
	}
	half := d / 2
	return half + rand.N(d-half+1)
}
