package capture

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"
)

// runner is one target of one group: its schedule loop and current settings.
type runner struct {
	group string
	// ctx is cancelled when the target is removed or the engine shuts down; it
	// is the parent of the target's requests.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// busy holds a token while a round of this target runs (scheduled or
	// CaptureNow), so rounds of one target never overlap.
	busy chan struct{}
	// wake signals the loop that the policy changed.
	wake chan struct{}
	// reset signals the loop that a triggered round just started: the next
	// scheduled round moves one interval away.
	reset chan struct{}

	mu     sync.Mutex
	target Target
	policy Policy
}

func newRunner(parent context.Context, group string, t Target, p Policy) *runner {
	ctx, cancel := context.WithCancelCause(parent)
	return &runner{
		group:  group,
		ctx:    ctx,
		cancel: cancel,
		busy:   make(chan struct{}, 1),
		wake:   make(chan struct{}, 1),
		reset:  make(chan struct{}, 1),
		target: t,
		policy: p,
	}
}

func (r *runner) snapshot() (Target, Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target, r.policy
}

// update makes the next round use t and p. It wakes the loop only when something
// changed, so a re-sync of thousands of unchanged targets costs no wake-ups.
func (r *runner) update(t Target, p Policy) {
	r.mu.Lock()
	if reflect.DeepEqual(r.target, t) && reflect.DeepEqual(r.policy, p) {
		r.mu.Unlock()
		return
	}
	r.target, r.policy = t, p
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
}

func (r *runner) stop(cause error) { r.cancel(cause) }

// loop runs r's schedule until r is stopped or the engine shuts down: the first
// round after a random delay in [0, Interval/2), then one every Interval ±
// Jitter·Interval. When the interval changes, a pending round that is due later
// than one new interval from now is moved to a random point within the new
// interval; interval 0 pauses the schedule.
func (e *Engine) loop(r *runner) {
	defer e.wg.Done()
	clk := e.cfg.Clock
	timer := clk.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()

	var (
		interval time.Duration
		due      time.Time
		armed    bool
	)
	arm := func(d time.Duration) {
		timer.Reset(d)
		due = clk.Now().Add(d)
		armed = true
	}
	apply := func() {
		_, p := r.snapshot()
		next := p.Interval
		if next == interval {
			return
		}
		switch {
		case next == 0:
			timer.Stop()
			armed = false
		case !armed || due.Sub(clk.Now()) > next:
			arm(e.initialDelay(next))
		}
		interval = next
	}

	apply()
	for {
		var fire <-chan time.Time
		if armed {
			fire = timer.C()
		}
		select {
		case <-r.ctx.Done():
			return
		case <-e.stopSched:
			return
		case <-r.wake:
			apply()
		case <-r.reset:
			if armed {
				arm(e.nextDelay(interval))
			}
		case <-fire:
			e.tick(r)
			arm(e.nextDelay(interval))
		}
	}
}

// tick starts a scheduled round of r, or counts it as skipped when the previous
// round of r is still running.
func (e *Engine) tick(r *runner) {
	select {
	case r.busy <- struct{}{}:
	default:
		e.cfg.Metrics.roundSkipped(SkipOverlap)
		t, _ := r.snapshot()
		e.log.V(1).Info("skipping scheduled round, the previous one is still running", "group", r.group, "target", t.Name())
		return
	}
	e.mu.Lock()
	if e.stopping {
		e.mu.Unlock()
		<-r.busy
		return
	}
	e.wg.Add(1)
	e.mu.Unlock()
	go func() {
		defer e.wg.Done()
		defer func() { <-r.busy }()
		t, p := r.snapshot()
		e.round(r.ctx, e.hardCtx, e.stopSched, r.group, t, p, ReasonSchedule)
	}()
}

func (e *Engine) initialDelay(interval time.Duration) time.Duration {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return initialDelay(e.rng, interval)
}

func (e *Engine) nextDelay(interval time.Duration) time.Duration {
	e.rngMu.Lock()
	defer e.rngMu.Unlock()
	return jitteredInterval(e.rng, interval, e.cfg.Jitter)
}

// initialDelay is uniform in [0, interval/2), so targets synced together do not
// all fire at once, and a target whose previous round ran elsewhere (a leader that
// died; its schedule is not persisted) is not captured later than one interval
// after that round was due, as long as the new leader took over within half an
// interval (at most the lease duration plus the retry period; see "Failure
// handling" in docs/architecture.md).
func initialDelay(rng *rand.Rand, interval time.Duration) time.Duration {
	if interval <= 1 {
		return 0
	}
	return time.Duration(rng.Int64N(int64(interval / 2)))
}

// jitteredInterval is uniform in [interval·(1-jitter), interval·(1+jitter)).
func jitteredInterval(rng *rand.Rand, interval time.Duration, jitter float64) time.Duration {
	d := time.Duration(float64(interval) * (1 + jitter*(2*rng.Float64()-1)))
	return max(d, time.Millisecond)
}
