package lifecycle

import (
	"context"
	"time"
)

// Wait waits d, or less when ctx ends first; it reports whether the whole d passed.
func Wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Every calls fn every d until ctx ends; the first call comes d after Every starts.
func Every(ctx context.Context, d time.Duration, fn func(ctx context.Context)) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			fn(ctx)
		}
	}
}
