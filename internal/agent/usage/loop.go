package usage

import (
	"context"
	"fmt"
	"time"
)

// Start starts reading every Config.Interval in the background, handing each reading to
// Config.Publish; the first comes one Interval after Start. ctx is not kept. Start may be
// called once.
func (r *Reader) Start(ctx context.Context) error {
	r.loopMu.Lock()
	defer r.loopMu.Unlock()
	if err := r.guard.Start(ctx); err != nil {
		return fmt.Errorf("start usage reader: %w", err)
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go r.loop(r.stop, r.done)
	return nil
}

func (r *Reader) loop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(r.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			m, err := r.ReadOnce(now)
			if err != nil {
				r.mu.Lock()
				r.limitedWarn("reading", now, "usage reading failed", "err", err)
				r.mu.Unlock()
				continue
			}
			select {
			case <-stop: // do not publish after Shutdown began
				return
			default:
			}
			r.cfg.Publish(m)
		}
	}
}

// Shutdown stops the loop and waits for it (a reading or Publish in progress) until ctx
// ends. It is idempotent and safe without Start.
func (r *Reader) Shutdown(ctx context.Context) error {
	r.loopMu.Lock()
	if r.guard.Shutdown() && r.stop != nil {
		close(r.stop)
	}
	done := r.done
	r.loopMu.Unlock()
	if done == nil {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shut down usage reader: %w", context.Cause(ctx))
	}
}
