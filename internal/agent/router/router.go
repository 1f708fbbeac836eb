// Package router hands each profile event of the node agent to every consumer
// (perf.data, pprof/Datadog, OTLP, ...). Each consumer has its own bounded
// queue and goroutine: a slow or failing consumer drops or fails its own
// events only (counted), never the others', and Publish never blocks.
package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
)

// EventConsumer receives every event published to the router it is registered
// with: profile events (Consumer) or metric readings (MetricsConsumer).
//
// Consume is called from one goroutine per consumer, in publish order, never
// concurrently with itself or with Shutdown. Every consumer gets the same
// event: it must not modify it or keep it past Consume unless it is only
// read. Consume and Shutdown must return soon after their ctx is done.
// Shutdown is called once, after the consumer's last Consume has returned.
type EventConsumer[E any] interface {
	Name() string
	Consume(ctx context.Context, ev E) error
	Shutdown(ctx context.Context) error
}

// Consumer consumes profile events.
type Consumer = EventConsumer[*profile.Event]

// MetricsConsumer consumes metric readings (resource usage, agent counters).
type MetricsConsumer = EventConsumer[*profile.Metrics]

// Defaults and limits applied by Config.SetDefaults and Config.Validate.
const (
	DefaultQueueSize   = 16
	MaxQueueSize       = 1 << 16
	DefaultLogInterval = 10 * time.Second
)

// Config configures a Fanout.
type Config struct {
	// QueueSize is how many events wait for each consumer beyond the one it is
	// consuming; more are dropped. Default 16, at most MaxQueueSize.
	QueueSize int
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Metrics receives the router's metrics; nil creates unregistered ones.
	Metrics *Metrics
	// LogInterval is the least time between two logs of drops of one consumer, and
	// the first wait between two logs of its failures, which doubles while it keeps
	// failing, up to MaxFailureLogInterval; what happens in between is counted into
	// the next log (and kprof_agent_router_events_total{result="failed"}). Default 10s.
	LogInterval time.Duration
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	check.Default(&c.QueueSize, DefaultQueueSize)
	check.Default(&c.LogInterval, DefaultLogInterval)
	c.Logger = logging.OrDiscard(c.Logger)
	if c.Metrics == nil {
		c.Metrics, _ = NewMetrics(nil) // fails only to register, and there is no registry
	}
}

// Validate reports every bad field by name; zero values are valid (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.QueueSize < 0 || c.QueueSize > MaxQueueSize {
		errs = append(errs, fmt.Errorf("QueueSize: must be from 1 to %d, got %d", MaxQueueSize, c.QueueSize))
	}
	return errors.Join(append(errs, check.NotNegative("LogInterval", c.LogInterval))...)
}

// Fanout fans events of type E out to consumers.
type Fanout[E any] struct {
	cfg Config
	log *slog.Logger
	// describe gives the log attributes naming an event; isNil tells a nil event.
	describe func(E) []any
	isNil    func(E) bool

	// mu guards the consumer list and the state against Publish, which holds
	// it shared only for non-blocking sends.
	mu      sync.RWMutex
	workers []*worker[E]
	guard   lifecycle.Guard

	// consumeCtx is given to Consume; it ends when a Shutdown deadline passes.
	consumeCtx    context.Context
	cancelConsume context.CancelFunc
	wg            sync.WaitGroup

	shutdownOnce sync.Once
	shutdownErr  error
}

// New validates cfg and returns a Fanout of profile events without
// consumers, not started.
func New(cfg Config) (*Fanout[*profile.Event], error) {
	return newFanout(cfg,
		func(ev *profile.Event) []any { return []any{"config", ev.Config} },
		func(ev *profile.Event) bool { return ev == nil })
}

// NewMetricsRouter validates cfg and returns a Fanout of metric readings
// without consumers, not started. Its consumers' names must differ from those
// of a profile Fanout sharing cfg.Metrics.
func NewMetricsRouter(cfg Config) (*Fanout[*profile.Metrics], error) {
	return newFanout(cfg,
		func(m *profile.Metrics) []any { return []any{"points", len(m.Points)} },
		func(m *profile.Metrics) bool { return m == nil })
}

func newFanout[E any](cfg Config, describe func(E) []any, isNil func(E) bool) (*Fanout[E], error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Fanout[E]{
		cfg:           cfg,
		log:           cfg.Logger.With("component", "router"),
		describe:      describe,
		isNil:         isNil,
		consumeCtx:    ctx,
		cancelConsume: cancel,
	}, nil
}

// Register adds a consumer. It must be called before Start; names must be
// unique. The router owns the consumer from then on: its Shutdown calls the
// consumer's Shutdown.
func (r *Fanout[E]) Register(c EventConsumer[E]) error {
	if c == nil {
		return errors.New("router: register: nil consumer")
	}
	name := c.Name()
	if name == "" {
		return errors.New("router: register: consumer has no name")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.guard.ShutDown():
		return fmt.Errorf("router: register %q: router is shut down", name)
	case r.guard.Started():
		return fmt.Errorf("router: register %q: router already started", name)
	}
	for _, w := range r.workers {
		if w.name == name {
			return fmt.Errorf("router: register %q: a consumer of that name is registered", name)
		}
	}
	r.workers = append(r.workers, newWorker(c, name, r.cfg, r.describe))
	return nil
}

// Start starts one goroutine per consumer. It returns at once and does not
// keep ctx.
func (r *Fanout[E]) Start(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.guard.Start(ctx); err != nil {
		return fmt.Errorf("router: start: %w", err)
	}
	r.startWorkers()
	return nil
}

func (r *Fanout[E]) startWorkers() {
	started := r.guard.Started()
	for _, w := range r.workers {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			if started {
				w.run(r.consumeCtx)
			} else {
				w.discard()
			}
		}()
	}
}

// Publish offers ev to every consumer's queue and returns without waiting: a
// consumer whose queue is full, or a router that is shut down, drops it
// (counted). Events published before Start wait in the queues.
func (r *Fanout[E]) Publish(ev E) {
	if r.isNil(ev) {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	for _, w := range r.workers {
		if r.guard.ShutDown() {
			w.drop(ev, "router is shut down")
			continue
		}
		w.offer(ev)
	}
}

// Shutdown stops accepting events, lets every consumer drain its queue until
// ctx is done, then cancels what is left (dropped, counted) and the Consume
// calls in progress. Each consumer's Shutdown is called, with ctx, once its
// queue is done. The errors of all consumers are joined. Shutdown is idempotent
// (a second call returns the first's result) and safe without Start.
func (r *Fanout[E]) Shutdown(ctx context.Context) error {
	r.shutdownOnce.Do(func() { r.shutdownErr = r.shutdown(ctx) })
	return r.shutdownErr
}

func (r *Fanout[E]) shutdown(ctx context.Context) error {
	r.mu.Lock()
	r.guard.Shutdown()
	workers := r.workers
	for _, w := range workers {
		w.shutdownCtx = ctx
		close(w.queue)
	}
	if !r.guard.Started() {
		// Nothing was consumed: what waits in the queues is dropped, and each
		// consumer is still shut down.
		r.startWorkers()
	}
	r.mu.Unlock()

	lifecycle.WaitOrCancel(ctx, &r.wg, r.cancelConsume)
	r.cancelConsume()

	var errs []error
	for _, w := range workers {
		if n := w.abandoned.Load(); n > 0 {
			errs = append(errs, fmt.Errorf("router: consumer %q: %d events not delivered before the shutdown deadline: %w", w.name, n, ctx.Err()))
		}
		if w.shutdownErr != nil {
			errs = append(errs, fmt.Errorf("router: consumer %q: shutdown: %w", w.name, w.shutdownErr))
		}
	}
	return errors.Join(errs...)
}

// ConsumerStats are the counts of one consumer since New.
type ConsumerStats struct {
	// Delivered: Consume returned nil. Failed: it returned an error (or
	// panicked). Dropped: the event never reached Consume (queue full, router
	// shut down, or shutdown deadline passed).
	Delivered, Failed, Dropped uint64
	// Queued is how many events wait now.
	Queued int
}

// Stats returns each consumer's counts, by name.
func (r *Fanout[E]) Stats() map[string]ConsumerStats {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]ConsumerStats, len(r.workers))
	for _, w := range r.workers {
		out[w.name] = ConsumerStats{
			Delivered: w.delivered.Load(),
			Failed:    w.failed.Load(),
			Dropped:   w.dropped.Load(),
			Queued:    len(w.queue),
		}
	}
	return out
}

// worker is one consumer's queue and goroutine.
type worker[E any] struct {
	c        EventConsumer[E]
	name     string
	queue    chan E
	log      *slog.Logger
	m        consumerMetrics
	describe func(E) []any

	delivered, failed, dropped atomic.Uint64
	abandoned                  atomic.Uint64 // dropped because the shutdown deadline passed

	dropLog logLimiter
	failLog *failureLog

	// Set before the queue is closed; read by the worker after it drained.
	shutdownCtx context.Context
	// Set by the worker before it returns; read after the WaitGroup.
	shutdownErr error
}

func newWorker[E any](c EventConsumer[E], name string, cfg Config, describe func(E) []any) *worker[E] {
	return &worker[E]{
		c:        c,
		name:     name,
		queue:    make(chan E, cfg.QueueSize),
		log:      cfg.Logger.With("component", "router", "consumer", name),
		m:        cfg.Metrics.forConsumer(name),
		describe: describe,
		dropLog:  logLimiter{every: cfg.LogInterval},
		failLog:  newFailureLog(cfg.LogInterval),
	}
}

func (w *worker[E]) offer(ev E) {
	w.m.queueLength.Inc() // before the send, so the worker's Dec never comes first
	select {
	case w.queue <- ev:
	default:
		w.m.queueLength.Dec()
		w.drop(ev, "queue full")
	}
}

func (w *worker[E]) drop(ev E, reason string) {
	total := w.dropped.Add(1)
	w.m.dropped.Inc()
	if ok, suppressed := w.dropLog.allow(); ok {
		w.log.Warn("dropped event", append(w.describe(ev), "reason", reason, "dropped_total", total, "dropped_unlogged", suppressed)...)
	}
}

// run consumes the queue until it is closed and drained, then shuts the
// consumer down. Once ctx is done, what is left is dropped.
func (w *worker[E]) run(ctx context.Context) {
	for ev := range w.queue {
		w.m.queueLength.Dec()
		if ctx.Err() != nil {
			w.abandoned.Add(1)
			w.drop(ev, "shutdown deadline passed")
			continue
		}
		if err := w.consume(ctx, ev); err != nil {
			total := w.failed.Add(1)
			w.m.failed.Inc()
			if ok, suppressed, quiet := w.failLog.allow(time.Now()); ok {
				w.log.Error("consumer failed", append(w.describe(ev), "err", err, "failed_total", total, "failed_unlogged", suppressed,
					"next_log_after", quiet)...)
			}
			continue
		}
		w.failLog.succeeded()
		w.delivered.Add(1)
		w.m.delivered.Inc()
	}
	w.shutdownErr = w.shutdownConsumer()
}

// discard drops what was queued for a router that never started, then shuts
// the consumer down.
func (w *worker[E]) discard() {
	for ev := range w.queue {
		w.m.queueLength.Dec()
		w.drop(ev, "router shut down before it started")
	}
	w.shutdownErr = w.shutdownConsumer()
}

func (w *worker[E]) consume(ctx context.Context, ev E) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("consume panicked: %v", p)
		}
	}()
	return w.c.Consume(ctx, ev)
}

func (w *worker[E]) shutdownConsumer() (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panicked: %v", p)
		}
	}()
	return w.c.Shutdown(w.shutdownCtx)
}

// logLimiter lets one log through per interval and counts the ones it holds back.
type logLimiter struct {
	mu         sync.Mutex
	every      time.Duration
	last       time.Time
	suppressed uint64
}

func (l *logLimiter) allow() (ok bool, suppressed uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if !l.last.IsZero() && now.Sub(l.last) < l.every {
		l.suppressed++
		return false, 0
	}
	suppressed, l.suppressed, l.last = l.suppressed, 0, now
	return true, suppressed
}
