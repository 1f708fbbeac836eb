// Package lifecycle is the contract of kprof's components and its one
// implementation: the Start/Shutdown Guard, the Background run of a loop, the
// shutdown step that lets work finish until a deadline and then cancels it
// (WaitOrCancel, and Drain around it), the adapter to controller-runtime's manager (Runnable) and the
// backoff of every retry loop.
package lifecycle

import (
	"context"
	"fmt"
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

// Drain is the end of a Shutdown whose work runs in goroutines counted by wg: it
// waits for the work until ctx ends; then it calls deadline (to say so) and cancel,
// and waits for the work to return. It calls cancel once more in every case, to
// release what finished work left behind, so cancel must be safe to repeat. Either
// func may be nil. When the work had to be cancelled it returns "<what>: <cause of ctx>".
func Drain(ctx context.Context, wg *sync.WaitGroup, deadline, cancel func(), what string) error {
	call := func(f func()) {
		if f != nil {
			f()
		}
	}
	cancelled := WaitOrCancel(ctx, wg, func() {
		call(deadline)
		call(cancel)
	})
	call(cancel)
	if cancelled {
		return fmt.Errorf("%s: %w", what, context.Cause(ctx))
	}
	return nil
}
