// Package lifecycle is the contract of kprof's components and its one
// implementation: the Start/Shutdown Guard, the Background run of a loop, the
// shutdown step that lets work finish until a deadline and then cancels it
// (WaitOrCancel), the adapter to controller-runtime's manager (Runnable) and the
// backoff of every retry loop.
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
