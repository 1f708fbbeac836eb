package capture

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"reflect"
	"sync"
	"time"
)

// runner is one target of one group: its current settings and its place in the
// scheduler's heap.
type runner struct {
	group string
	// ctx is cancelled when the target is removed or the engine shuts down; it
	// is the parent of the target's requests.
	ctx    context.Context
	cancel context.CancelCauseFunc
	// busy holds a token while a round of this target is queued or runs (scheduled,
	// CaptureNow or Trigger), so rounds of one target never overlap.
	busy chan struct{}

	mu     sync.Mutex
	target Target
	policy Policy

	// Owned by the scheduler (under scheduler.mu).
	due      time.Time
	interval time.Duration // the interval the schedule runs at; 0: paused
	index    int           // in the heap; -1: not scheduled
}

func newRunner(parent context.Context, group string, t Target, p Policy) *runner {
	ctx, cancel := context.WithCancelCause(parent)
	return &runner{
		group:  group,
		ctx:    ctx,
		cancel: cancel,
		busy:   make(chan struct{}, 1),
		target: t,
		policy: p,
		index:  -1,
	}
}

func (r *runner) snapshot() (Target, Policy) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.target, r.policy
}

// update makes the next round use t and p, and reports whether anything changed, so
// a re-sync of thousands of unchanged targets costs the scheduler nothing.
func (r *runner) update(t Target, p Policy) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reflect.DeepEqual(r.target, t) && reflect.DeepEqual(r.policy, p) {
		return false
	}
	r.target, r.policy = t, p
	return true
}

func (r *runner) stop(cause error) { r.cancel(cause) }

// scheduler runs the schedule of every target from one goroutine: a heap ordered by
// each target's next due time, one timer for the earliest, and a fixed pool of
// MaxConcurrent workers that run the due rounds. Nothing grows a goroutine per target.
//
// A target's first round comes after a random delay in [0, Interval/2), then one every
// Interval ± Jitter·Interval. When the interval changes, a round due later than one
// new interval from now is moved to a random point within the new interval; interval
// 0 pauses the schedule.
type scheduler struct {
	e    *Engine
	kick chan struct{} // the earliest due time may have changed
	work chan struct{} // a round was queued

	mu    sync.Mutex
	heap  dueHeap
	queue []*runner // due rounds (busy token held) waiting for a worker
}

func newScheduler(e *Engine) *scheduler {
	return &scheduler{e: e, kick: make(chan struct{}, 1), work: make(chan struct{}, 1)}
}

// start launches the timer goroutine and the workers. Call with e.mu held, once.
func (s *scheduler) start(workers int) {
	s.e.wg.Add(1 + workers)
	go s.run()
	for range workers {
		go s.worker()
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default: // one is pending
	}
}

// apply brings r's place in the schedule in line with its policy's interval: add a
// new target, move or pause one whose interval changed.
func (s *scheduler) apply(r *runner) {
	_, p := r.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.ctx.Err() != nil {
		return
	}
	next := p.Interval
	if next == r.interval && (next == 0 || r.index >= 0) {
		return
	}
	now := s.e.cfg.Clock.Now()
	switch {
	case next == 0:
		if r.index >= 0 {
			heap.Remove(&s.heap, r.index)
		}
	case r.index < 0:
		r.due = now.Add(s.e.initialDelay(next))
		heap.Push(&s.heap, r)
	case r.due.Sub(now) > next:
		r.due = now.Add(s.e.initialDelay(next))
		heap.Fix(&s.heap, r.index)
	}
	r.interval = next
	signal(s.kick)
}

// reset moves r's next scheduled round one interval from now (a triggered round just started).
func (s *scheduler) reset(r *runner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.index < 0 {
		return
	}
	r.due = s.e.cfg.Clock.Now().Add(s.e.nextDelay(r.interval))
	heap.Fix(&s.heap, r.index)
	signal(s.kick)
}

// remove takes r out of the schedule (its ctx is cancelled by the caller).
func (s *scheduler) remove(r *runner) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.index >= 0 {
		heap.Remove(&s.heap, r.index)
	}
}

// run fires due rounds until the engine shuts down. The timer is re-armed only when
// the earliest due time changed.
func (s *scheduler) run() {
	defer s.e.wg.Done()
	clk := s.e.cfg.Clock
	timer := clk.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var (
		armed    bool
		armedFor time.Time
	)
	for {
		s.mu.Lock()
		now := clk.Now()
		var due []*runner
		for len(s.heap) > 0 && !s.heap[0].due.After(now) {
			r := s.heap[0]
			due = append(due, r)
			r.due = now.Add(s.e.nextDelay(r.interval))
			heap.Fix(&s.heap, 0)
		}
		var earliest time.Time
		if len(s.heap) > 0 {
			earliest = s.heap[0].due
		}
		s.mu.Unlock()
		for _, r := range due {
			s.tick(r)
		}
		switch {
		case earliest.IsZero() && armed:
			timer.Stop()
			armed = false
		case !earliest.IsZero() && (!armed || !earliest.Equal(armedFor)):
			timer.Reset(earliest.Sub(now))
			armed, armedFor = true, earliest
		}
		select {
		case <-s.e.stopSched:
			s.drop()
			return
		case <-s.kick:
		case <-timer.C():
			armed = false
		}
	}
}

// tick queues a scheduled round of r, or counts it as skipped when the previous
// round of r is still queued or running.
func (s *scheduler) tick(r *runner) {
	select {
	case r.busy <- struct{}{}:
	default:
		s.e.cfg.Metrics.roundSkipped(SkipOverlap)
		t, _ := r.snapshot()
		s.e.log.Debug("skipping scheduled round, the previous one is still running", "group", r.group, "target", t.Name())
		return
	}
	s.mu.Lock()
	s.queue = append(s.queue, r)
	s.mu.Unlock()
	signal(s.work)
}

// next pops the oldest queued round, nil when none is queued.
func (s *scheduler) next() *runner {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	r := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	return r
}

// worker runs queued rounds until the engine shuts down.
func (s *scheduler) worker() {
	defer s.e.wg.Done()
	for {
		r := s.next()
		if r == nil {
			select {
			case <-s.e.stopSched:
				return
			case <-s.work:
				continue
			}
		}
		select {
		case <-s.e.stopSched:
			<-r.busy
			signal(s.work) // another worker may be waiting for work
			continue       // the loop drains the queue, then returns
		default:
		}
		s.runRound(r)
	}
}

func (s *scheduler) runRound(r *runner) {
	defer func() { <-r.busy }()
	if r.ctx.Err() != nil {
		return // removed while it waited
	}
	t, p := r.snapshot()
	s.e.round(r.ctx, s.e.hardCtx, s.e.stopSched, r.group, t, p, ReasonSchedule)
}

// drop releases the rounds still queued at shutdown.
func (s *scheduler) drop() {
	for r := s.next(); r != nil; r = s.next() {
		<-r.busy
	}
}

// dueHeap orders runners by due time.
type dueHeap []*runner

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	r := x.(*runner)
	r.index = len(*h)
	*h = append(*h, r)
}
func (h *dueHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
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
