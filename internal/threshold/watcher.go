package threshold

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kprof/kprof/internal/lifecycle"
)

// errShutdown is the cause of the cancellation of Trigger calls still running
// when Shutdown's context ends.
var errShutdown = fmt.Errorf("trigger watcher shut down: %w", context.Canceled)

// errGroupRemoved is the cause of the cancellation of a removed group's work.
var errGroupRemoved = fmt.Errorf("trigger group removed: %w", context.Canceled)

// Watcher checks the usage of groups of pods at an interval and triggers
// captures when a pod crosses its group's thresholds. It is safe for concurrent use.
type Watcher struct {
	cfg Config
	log *slog.Logger
	// after returns a channel that receives after d; a test replaces it.
	after func(d time.Duration) <-chan time.Time

	// loopsCtx is the parent of the check loops and everything they call
	// (usage reads, Records); cancelled when Shutdown starts.
	loopsCtx  context.Context
	stopLoops context.CancelCauseFunc
	// hardCtx is the parent of Trigger calls; cancelled when Shutdown stops waiting for them.
	hardCtx    context.Context
	hardCancel context.CancelCauseFunc

	rngMu sync.Mutex
	rng   *rand.Rand

	mu     sync.Mutex
	groups map[string]*group
	guard  lifecycle.Guard
	// wg counts check loops and Trigger calls. Loops are added under mu before
	// Shutdown; Trigger calls by their loop, whose own count keeps wg above zero.
	wg sync.WaitGroup
}

// group is one policy group: its loop and its current settings.
type group struct {
	name string
	log  *slog.Logger
	// loopCtx ends the loop (Remove, Shutdown); trigCtx cancels its Trigger calls (Remove, Shutdown deadline).
	loopCtx  context.Context
	stopLoop context.CancelCauseFunc
	trigCtx  context.Context
	stopTrig context.CancelCauseFunc
	// wake tells the loop that the policy changed.
	wake chan struct{}

	mu      sync.Mutex
	policy  Policy
	targets []Target
	// outstanding counts Trigger calls running; inFlight names their targets.
	outstanding int
	inFlight    map[string]bool
	// recorded holds the triggers this process recorded, in case the store's
	// LastTrigger reads a cache that has not seen them yet.
	recorded map[types.UID]time.Time

	// Owned by the loop goroutine.
	metricsDown bool
	reported    Reported[types.UID] // problem set last reported per pod
}

// New fills in cfg's defaults, validates it and returns a watcher that checks nothing
// until Start.
func New(cfg Config) (*Watcher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	loopsCtx, stopLoops := context.WithCancelCause(context.Background())
	hardCtx, hardCancel := context.WithCancelCause(context.Background())
	return &Watcher{
		cfg:        cfg,
		log:        cfg.Logger.With("logger", "trigger"),
		after:      time.After,
		loopsCtx:   loopsCtx,
		stopLoops:  stopLoops,
		hardCtx:    hardCtx,
		hardCancel: hardCancel,
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		groups:     make(map[string]*group),
	}, nil
}

// Start begins checking every group synced so far and those synced later. It
// returns at once; ctx is not kept (Shutdown stops the watcher).
func (w *Watcher) Start(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.guard.Start(ctx); err != nil {
		return fmt.Errorf("start trigger watcher: %w", err)
	}
	for _, g := range w.groups {
		w.launch(g)
	}
	w.log.Info("trigger watcher started", "groups", len(w.groups), "maxInFlight", w.cfg.MaxInFlight)
	return nil
}

// Shutdown stops the checks, lets running Trigger calls finish until ctx is
// done, then cancels them and waits for them to return. It is idempotent and
// safe without Start; it returns an error only when Trigger calls had to be cancelled.
func (w *Watcher) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	if w.guard.Shutdown() {
		w.stopLoops(errShutdown)
	}
	w.mu.Unlock()

	return lifecycle.Drain(ctx, &w.wg,
		func() { w.log.Info("trigger watcher shutdown deadline reached, cancelling running triggers") },
		func() { w.hardCancel(errShutdown) },
		"shut down trigger watcher: running triggers cancelled")
}

// Sync replaces the policy and the targets of group, starting its check loop
// when it is new. An invalid policy is logged and the call ignored (check with
// Policy.Validate first); targets without an ID or a pod are logged and skipped.
// A changed CheckInterval restarts the group's schedule: the next check comes
// after a short random delay, as for a new group.
func (w *Watcher) Sync(name string, p Policy, targets []Target) {
	if err := p.Validate(); err != nil {
		w.log.Error("ignoring sync of trigger group with an invalid policy", "err", err, "group", name)
		return
	}
	if p.Selector == nil {
		p.Selector = labels.Everything()
	}
	p.Rule.Containers = append([]string(nil), p.Rule.Containers...)
	valid := make([]Target, 0, len(targets))
	uids := make(map[types.UID]bool, len(targets))
	for _, t := range targets {
		if t.ID == "" || t.Pod == nil {
			w.log.Error("ignoring trigger target without an ID or a pod", "group", name, "target", t.ID)
			continue
		}
		valid = append(valid, t)
		uids[t.Pod.UID] = true
	}

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.guard.ShutDown() {
		w.log.Debug("ignoring sync after shutdown", "group", name)
		return
	}
	g := w.groups[name]
	if g == nil {
		g = w.newGroup(name)
		w.groups[name] = g
		if w.guard.Started() {
			w.launch(g)
		}
	}
	g.mu.Lock()
	g.policy = p
	g.targets = valid
	for uid := range g.recorded {
		if !uids[uid] {
			delete(g.recorded, uid)
		}
	}
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default: // a wake-up is already pending
	}
	w.log.Debug("synced trigger group", "group", name, "targets", len(valid),
		"namespace", p.Namespace, "selector", p.Selector.String(), "checkInterval", p.CheckInterval,
		"cpuPercent", p.Rule.CPUPercent, "memoryPercent", p.Rule.MemoryPercent, "cooldown", p.Rule.Cooldown)
}

// Remove stops the checks of group and cancels its running Trigger calls.
func (w *Watcher) Remove(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	g := w.groups[name]
	if g == nil {
		return
	}
	g.stopLoop(errGroupRemoved)
	g.stopTrig(errGroupRemoved)
	delete(w.groups, name)
	w.log.Debug("removed trigger group", "group", name)
}

func (w *Watcher) newGroup(name string) *group {
	loopCtx, stopLoop := context.WithCancelCause(w.loopsCtx)
	trigCtx, stopTrig := context.WithCancelCause(w.hardCtx)
	return &group{
		name:     name,
		log:      w.log.With("group", name),
		loopCtx:  loopCtx,
		stopLoop: stopLoop,
		trigCtx:  trigCtx,
		stopTrig: stopTrig,
		wake:     make(chan struct{}, 1),
		inFlight: make(map[string]bool),
		recorded: make(map[types.UID]time.Time),
		reported: Reported[types.UID]{},
	}
}

// launch starts g's loop. Call with mu held, started and not stopping.
func (w *Watcher) launch(g *group) {
	w.wg.Add(1)
	go w.loop(g)
}

// loop checks g every CheckInterval until g is removed or the watcher shuts
// down; the first check comes after a short random delay.
func (w *Watcher) loop(g *group) {
	defer w.wg.Done()
	var (
		interval time.Duration
		tick     <-chan time.Time
	)
	apply := func() {
		g.mu.Lock()
		next := g.policy.CheckInterval
		g.mu.Unlock()
		if next != interval {
			interval = next
			tick = w.after(w.firstDelay(interval))
		}
	}
	apply()
	for {
		select {
		case <-g.loopCtx.Done():
			return
		case <-g.wake:
			apply()
		case <-tick:
			if g.loopCtx.Err() != nil { // removed while the tick was pending
				return
			}
			w.check(g)
			tick = w.after(w.nextDelay(interval))
		}
	}
}

// firstDelay is a random delay in [0, Jitter·interval].
func (w *Watcher) firstDelay(interval time.Duration) time.Duration {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return time.Duration(w.rng.Float64() * w.cfg.Jitter * float64(interval))
}

// nextDelay is interval ± Jitter·interval.
func (w *Watcher) nextDelay(interval time.Duration) time.Duration {
	w.rngMu.Lock()
	defer w.rngMu.Unlock()
	return time.Duration(float64(interval) * (1 + w.cfg.Jitter*(2*w.rng.Float64()-1)))
}

// reserve takes an in-flight slot for target id, false when the group has
// MaxInFlight outstanding or id already has one.
func (g *group) reserve(id string, limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.inFlight[id] || g.outstanding >= limit {
		return false
	}
	g.inFlight[id] = true
	g.outstanding++
	return true
}

func (g *group) release(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.inFlight, id)
	g.outstanding--
}

// outstandingTriggers returns the number of Trigger calls of g running.
func (g *group) outstandingTriggers() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.outstanding
}
