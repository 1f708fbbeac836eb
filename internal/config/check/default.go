package check

import "time"

// Default sets *p to def when *p is the zero value: the one way a SetDefaults fills a
// field that was left out.
func Default[T comparable](p *T, def T) {
	var zero T
	if *p == zero {
		*p = def
	}
}

// DefaultNow sets a nil clock to time.Now: the one default of every Config's Now, which
// tests set to a fake clock.
func DefaultNow(now *func() time.Time) {
	if *now == nil {
		*now = time.Now
	}
}
