package nodethreshold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"k8s.io/apimachinery/pkg/types"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/lifecycle"
)

// errShutdown cancels the creates still running when Shutdown's context ends.
var errShutdown = fmt.Errorf("node thresholds shut down: %w", context.Canceled)

// Thresholds evaluates the ProfilingConfigs' thresholds on the readings it observes and
// creates ProfileCaptures on crossings. New builds it, Start runs it, Shutdown stops it.
type Thresholds struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	access  *access
	api     apiServer

	// createCtx is the parent of the creates; cancelled when Shutdown stops waiting.
	createCtx    context.Context
	cancelCreate context.CancelCauseFunc
	wg           sync.WaitGroup // creates running

	mu       sync.Mutex // guards what follows; Observe holds it for one evaluation
	guard    lifecycle.Guard
	notReady bool // readings seen before the config cache synced (logged once)
	state
}

// New checks cfg and builds the thresholds; nothing runs until Start.
func New(cfg Config) (*Thresholds, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t, err := newThresholds(cfg)
	if err != nil {
		return nil, err
	}
	t.api, err = newRESTAPI(cfg.REST, t.access, t.log)
	if err != nil {
		return nil, fmt.Errorf("node thresholds: %w", err)
	}
	return t, nil
}

// newThresholds builds everything but the API server side (a test sets t.api).
func newThresholds(cfg Config) (*Thresholds, error) {
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "nodethreshold")
	ctx, cancel := context.WithCancelCause(context.Background())
	return &Thresholds{
		cfg:          cfg,
		log:          log,
		metrics:      m,
		access:       newAccess(log, m),
		createCtx:    ctx,
		cancelCreate: cancel,
		state:        newState(),
	}, nil
}

// Start starts the ProfilingConfig informer and evaluates the readings observed from now
// on (once the informer has synced). It returns at once; ctx is not kept.
func (t *Thresholds) Start(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := t.guard.Start(ctx); err != nil {
		return fmt.Errorf("start node thresholds: %w", err)
	}
	t.api.start()
	t.log.Info("evaluating ProfilingConfig thresholds on this node's cgroup readings", "node", t.cfg.NodeName,
		"pin_window", t.cfg.Window, "max_in_flight", t.cfg.MaxInFlight)
	return nil
}

// Shutdown stops evaluating, lets running creates finish until ctx ends, then cancels
// them, and stops the informer. It is idempotent and safe without Start.
func (t *Thresholds) Shutdown(ctx context.Context) error {
	t.mu.Lock()
	t.guard.Shutdown()
	t.mu.Unlock()

	errs := []error{lifecycle.Drain(ctx, &t.wg, nil, func() { t.cancelCreate(errShutdown) },
		"shut down node thresholds: running creates cancelled")}
	if t.api != nil {
		if err := t.api.stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shut down node thresholds: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Forbidden returns the operations (OpWatchConfigs, OpCreateCaptures) the API server
// refused with Forbidden at its last answer; nil when none.
func (t *Thresholds) Forbidden() []string { return t.access.Forbidden() }

// Observe evaluates one reading of the usage reader (from its goroutine, one at a time).
// It does not block on the API server: creates run in the background. Before Start,
// after Shutdown and until the ProfilingConfigs are known, it only keeps the counters,
// so that the next reading has a CPU usage.
func (t *Thresholds) Observe(m *profile.Metrics) {
	if m == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	usage := t.rates.usage(m)
	if !t.guard.Running() {
		return
	}
	configs, synced := t.api.Configs()
	if !synced {
		if !t.notReady {
			t.notReady = true
			t.log.Info("node thresholds wait for the ProfilingConfigs to be listed")
		}
		return
	}
	if t.notReady {
		t.notReady = false
		t.log.Info("ProfilingConfigs listed: evaluating thresholds", "configs", len(configs))
	}
	policies, errs := t.policies(configs)
	for _, err := range errs {
		t.log.Warn("ProfilingConfig not evaluated on this node", "err", err)
	}
	t.evaluate(m.Time, usage, policies)
}

// podKey is one pod under one config: the unit of cooldowns.
type podKey struct {
	config string
	uid    types.UID
}
