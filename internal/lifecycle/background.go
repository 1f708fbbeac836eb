package lifecycle

import (
	"context"
	"sync"
)

// Background is the start/stop half of a component whose work is one blocking
// run(ctx) — an informer, a loop: Go starts it in its own goroutine with a context of
// its own (not the caller's), Stop cancels that context and waits for run to return.
// The zero value is ready to use.
type Background struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// Go starts run once; later calls do nothing.
func (b *Background) Go(run func(ctx context.Context)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.cancel, b.done = cancel, done
	go func() {
		defer close(done)
		run(ctx)
	}()
}

// Stop cancels run's context and waits for run to return until ctx ends; it then
// returns context.Cause(ctx). It is idempotent and safe without Go.
func (b *Background) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
