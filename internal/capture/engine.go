package capture

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"

	"github.com/kprof/kprof/internal/lifecycle"
)

// Causes of cancellation, visible in Result.Err of cancelled captures. Each
// wraps context.Canceled.
var (
	errTargetRemoved = fmt.Errorf("target removed from its group: %w", context.Canceled)
	errGroupRemoved  = fmt.Errorf("group removed: %w", context.Canceled)
	errShutdown      = fmt.Errorf("capture engine shut down: %w", context.Canceled)
)

// Engine schedules captures of groups of targets, each group with one policy.
// It is safe for concurrent use.
type Engine struct {
	cfg Config
	log *slog.Logger
	// sem holds one token per round that is fetching or storing (MaxConcurrent).
	sem chan struct{}

	// hardCtx is the parent of every capture. Shutdown cancels it when it stops
	// waiting for in-flight captures.
	hardCtx    context.Context
	hardCancel context.CancelCauseFunc
	// stopSched is closed when Shutdown starts: no round is scheduled after that.
	stopSched chan struct{}

	rngMu sync.Mutex
	rng   *rand.Rand

	sched *scheduler

	mu     sync.Mutex
	groups map[string]*group
	guard  lifecycle.Guard
	// wg counts schedule loops, scheduled rounds and CaptureNow calls. Add only
	// under mu before Shutdown, so Shutdown's Wait never races an Add.
	wg sync.WaitGroup
}

type group struct {
	policy  Policy
	targets map[string]*runner // by Target.ID
}

// New fills in cfg's defaults, validates it and returns an engine that schedules
// nothing until Start.
func New(cfg Config) (*Engine, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	hardCtx, hardCancel := context.WithCancelCause(context.Background())
	e := &Engine{
		cfg:        cfg,
		log:        cfg.Logger.With("logger", "capture"),
		sem:        make(chan struct{}, cfg.MaxConcurrent),
		hardCtx:    hardCtx,
		hardCancel: hardCancel,
		stopSched:  make(chan struct{}),
		rng:        rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
		groups:     make(map[string]*group),
	}
	e.sched = newScheduler(e)
	return e, nil
}

// Start begins scheduled captures of every group synced so far and of those
// synced later. It returns at once; ctx is not kept (Shutdown stops the engine).
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := e.guard.Start(ctx); err != nil {
		return fmt.Errorf("start capture engine: %w", err)
	}
	e.sched.start(e.cfg.MaxConcurrent)
	n := 0
	for _, g := range e.groups {
		for _, r := range g.targets {
			e.sched.apply(r)
			n++
		}
	}
	e.log.Info("capture engine started", "groups", len(e.groups), "targets", n, "maxConcurrent", e.cfg.MaxConcurrent)
	return nil
}

// Shutdown stops scheduling, lets in-flight captures finish until ctx is done,
// then cancels them and waits for them to return. It is idempotent and safe
// without Start. It returns an error only when captures had to be cancelled.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	if e.guard.Shutdown() {
		close(e.stopSched)
	}
	e.mu.Unlock()

	return lifecycle.Drain(ctx, &e.wg,
		func() { e.log.Info("capture engine shutdown deadline reached, cancelling in-flight captures") },
		func() { e.hardCancel(errShutdown) },
		"shut down capture engine: in-flight captures cancelled")
}

// Sync replaces the targets and the policy of group. Targets no longer listed
// are cancelled, including their in-flight requests. New targets start after a
// random delay in [0, Interval/2); existing ones keep their schedule and use the
// new policy, BaseURL and Meta from their next round. An invalid policy is
// logged and the call ignored (check with Policy.Validate first); targets
// without an ID are logged and skipped.
func (e *Engine) Sync(groupName string, p Policy, targets []Target) {
	if err := p.Validate(); err != nil {
		e.log.Error("ignoring sync of capture group with an invalid policy", "err", err, "group", groupName)
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.guard.ShutDown() {
		e.log.Debug("ignoring sync after shutdown", "group", groupName)
		return
	}
	g := e.groups[groupName]
	if g == nil {
		g = &group{targets: make(map[string]*runner)}
		e.groups[groupName] = g
	}
	g.policy = p

	want := make(map[string]Target, len(targets))
	for _, t := range targets {
		switch _, dup := want[t.ID]; {
		case t.ID == "":
			e.log.Error("ignoring target without an ID", "group", groupName, "baseURL", redactURL(t.BaseURL))
			continue
		case dup:
			e.log.Error("target ID listed twice, the last one wins", "group", groupName, "target", t.ID)
		}
		want[t.ID] = t
	}
	removed, added := 0, 0
	for id, r := range g.targets {
		if _, ok := want[id]; !ok {
			r.stop(errTargetRemoved)
			e.sched.remove(r)
			delete(g.targets, id)
			removed++
		}
	}
	for id, t := range want {
		if r, ok := g.targets[id]; ok {
			if r.update(t, p) && e.guard.Started() {
				e.sched.apply(r)
			}
			continue
		}
		r := newRunner(e.hardCtx, groupName, t, p)
		g.targets[id] = r
		added++
		if e.guard.Started() {
			e.sched.apply(r)
		}
	}
	e.cfg.Metrics.setTargets(groupName, len(g.targets))
	e.log.Debug("synced capture group", "group", groupName, "targets", len(g.targets),
		"added", added, "removed", removed, "interval", p.Interval, "types", p.Types)
}

// Remove cancels every capture of group and forgets it.
func (e *Engine) Remove(groupName string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	g := e.groups[groupName]
	if g == nil {
		return
	}
	for _, r := range g.targets {
		r.stop(errGroupRemoved)
		e.sched.remove(r)
	}
	delete(e.groups, groupName)
	e.cfg.Metrics.forgetGroup(groupName)
	e.log.Debug("removed capture group", "group", groupName, "targets", len(g.targets))
}

// Groups returns the names of the known groups, sorted.
func (e *Engine) Groups() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	names := make([]string, 0, len(e.groups))
	for name := range e.groups {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// TargetCount returns how many targets group has (0 for an unknown group).
func (e *Engine) TargetCount(groupName string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if g := e.groups[groupName]; g != nil {
		return len(g.targets)
	}
	return 0
}

// lookup returns the runner of target id in group, or nil. Call with mu held.
func (e *Engine) lookup(groupName, id string) *runner {
	if g := e.groups[groupName]; g != nil {
		return g.targets[id]
	}
	return nil
}
