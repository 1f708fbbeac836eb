package capture

import (
	"context"
	"errors"
	"fmt"
)

// ErrUnknownTarget: Trigger named a target that is not in the group.
var ErrUnknownTarget = errors.New("target not known to the capture engine")

// ErrRoundInFlight: Trigger found a round of the target already capturing; that round
// covers the moment, so no second round is started (no double capture when a
// threshold crossing and the schedule coincide).
var ErrRoundInFlight = errors.New("a round of this target is already capturing")

// Trigger runs one round of a known target now, with reason (e.g. "threshold: cpu 93%
// of request ≥ 80%"), and waits for it. It pushes the target's next scheduled round
// one interval away, so a trigger and the schedule never capture the same target
// back to back. When a round of the target is already running it returns
// ErrRoundInFlight without starting another. The round is cancelled when ctx ends,
// the target is removed or the engine shuts down. The returned error joins the
// failures of the round's captures.
func (e *Engine) Trigger(ctx context.Context, groupName, targetID, reason string) error {
	e.mu.Lock()
	if e.guard.ShutDown() {
		e.mu.Unlock()
		return errShutdown
	}
	r := e.lookup(groupName, targetID)
	if r == nil {
		e.mu.Unlock()
		return fmt.Errorf("trigger %s in %s: %w", targetID, groupName, ErrUnknownTarget)
	}
	select {
	case r.busy <- struct{}{}:
	default:
		e.mu.Unlock()
		e.cfg.Metrics.roundSkipped(SkipTriggerCoalesced)
		return ErrRoundInFlight
	}
	e.wg.Add(1)
	e.mu.Unlock()
	defer e.wg.Done()
	defer func() { <-r.busy }()

	e.sched.reset(r)
	t, p := r.snapshot()
	fetchCtx, cancel := mergeCancel(ctx, r.ctx)
	defer cancel()
	storeCtx, cancelStore := mergeCancel(ctx, e.hardCtx)
	defer cancelStore()
	var errs []error
	for _, res := range e.round(fetchCtx, storeCtx, nil, groupName, t, p, reason) {
		if res.Err != nil {
			errs = append(errs, res.Err)
		}
	}
	return errors.Join(errs...)
}
