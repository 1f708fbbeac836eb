// Package lifecycle holds the shutdown step components share: let running work
// finish until a deadline, then cancel it and wait for it to notice.
package lifecycle

import (
	"context"
	"sync"
)

// WaitOrCancel waits for wg. When ctx ends first, it calls cancel and waits for wg
// again (the work must honour cancellation). It reports whether cancel was called.
// With an already expired ctx, cancel may be called even though the work was just
// finishing, so cancelling finished work must be harmless.
func WaitOrCancel(ctx context.Context, wg *sync.WaitGroup, cancel func()) (cancelled bool) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return false
	default:
	}
	select {
	case <-done:
		return false
	case <-ctx.Done():
		cancel()
		<-done
		return true
	}
}
