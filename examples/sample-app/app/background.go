package app

import (
	"context"
	"time"
)

// Background load: a small steady CPU burn (about a fifth of one core) so that a
// profile of an otherwise idle sample app is never empty.
const (
	backgroundPeriod = 50 * time.Millisecond
	backgroundBurn   = 10 * time.Millisecond
)

// RunBackgroundLoad burns CPU in burnCPU for backgroundBurn every backgroundPeriod
// until ctx is done.
func (a *App) RunBackgroundLoad(ctx context.Context) {
	a.log.Info("background load running", "burn", backgroundBurn, "every", backgroundPeriod)
	t := time.NewTicker(backgroundPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			burnCPU(ctx, now.Add(backgroundBurn))
		}
	}
}
