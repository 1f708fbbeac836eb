// Package recorder is the node agent's flight recorder: a router consumer that
// keeps, per pod, the CPU samples of the last Window (default 30 s), so that a
// capture triggered now can include the seconds before it, which no pprof
// request can give.
//
// The window is the last Window of intervals recorded: measured back from the
// end of the newest one, so a collector running late loses nothing.
//
// Resolution: one bucket per pod per collection interval (the interval of the
// collection config: 10 s by the embedded default, often 1 s). A profile covers
// whole buckets, so it may start up to one interval before the time asked for
// and end up to one interval after; the window it really covers is returned
// with it. Only time-based events (cpu-clock, task-clock) are recorded.
//
// Memory is bounded: identical stacks are stored once (within a bucket their
// counts add up, across buckets and pods they are shared), every stack and
// bucket is counted in approximate bytes, and past MaxBytes the oldest buckets
// are evicted (pinned ones last), counted in kprof_agent_recorder_evicted_buckets_total.
package recorder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

var _ router.Consumer = (*Recorder)(nil)

// Defaults applied by Config.SetDefaults.
const (
	DefaultWindow   = 30 * time.Second
	DefaultMaxBytes = 64 << 20
	DefaultPinTTL   = 10 * time.Minute
	// maxPinsPerPod bounds the pins of one pod; the oldest goes first.
	maxPinsPerPod = 16
)

// ErrClosed is returned once the recorder is shut down.
var ErrClosed = errors.New("flight recorder shut down")

// Config configures a Recorder.
type Config struct {
	// Window is how long each pod's samples are kept. Default 30s.
	Window time.Duration
	// MaxBytes bounds the (approximate) memory the samples take; past it the
	// oldest buckets are evicted. Default 64 MiB.
	MaxBytes int64
	// PinTTL is how long a Pin keeps a pod's samples when no fetch releases it.
	// Default 10m.
	PinTTL time.Duration
	// Registry receives the recorder's metrics; nil leaves them unregistered.
	Registry prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// settings are the optional window and bounds, the logger and the clock, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("Window", &c.Window, DefaultWindow),
		check.Field("MaxBytes", &c.MaxBytes, DefaultMaxBytes),
		check.Field("PinTTL", &c.PinTTL, DefaultPinTTL),
		logging.Setting(&c.Logger),
		check.Clock(&c.Now),
	}
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() { check.SetDefaults(c.settings()...) }

// Validate reports every bad field by name; zero values are valid (SetDefaults fills them).
func (c *Config) Validate() error {
	return check.NotNegatives(c.settings()...)
}

// Window is a time range [Start, End].
type Window struct{ Start, End time.Time }

// Recorder is the flight recorder. Consume is called by the router; Pin,
// Query, Profile and WaitFlushed by anyone, concurrently.
type Recorder struct {
	cfg Config
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex
	closed bool
	store  store
	// flushed is the end of the newest time-based interval recorded; flushCh
	// is closed (and replaced) when it advances.
	flushed time.Time
	flushCh chan struct{}
	node    string // the node label of the events
}

// New fills in cfg's defaults, validates it and returns an empty recorder.
func New(cfg Config) (*Recorder, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("recorder config: %w", err)
	}
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	return &Recorder{
		cfg:     cfg,
		log:     cfg.Logger,
		m:       m,
		store:   newStore(),
		flushCh: make(chan struct{}),
	}, nil
}

// Name is the consumer's name in the router's metrics.
func (r *Recorder) Name() string { return "recorder" }

// TimeBased reports whether samples of the perf event measure CPU time: only
// those are recorded.
func TimeBased(event string) bool { return event == "cpu-clock" || event == "task-clock" }

// Consume records the samples of a time-based event that carry a pod (labels
// namespace and pod); others are ignored. ev is only read.
func (r *Recorder) Consume(_ context.Context, ev *profile.Event) error {
	if ev == nil || !TimeBased(ev.EventName) || !ev.End.After(ev.Start) {
		return nil
	}
	groups := groupByPod(ev) // outside the lock: keys only
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	now := r.cfg.Now()
	if n := ev.Labels[profile.LabelNode]; n != "" {
		r.node = n
	}
	r.store.addInterval(ev)
	for key, g := range groups {
		r.store.addBucket(key, ev, g)
	}
	if ev.End.After(r.flushed) {
		r.flushed = ev.End
		close(r.flushCh)
		r.flushCh = make(chan struct{})
	}
	r.expireLocked(now)
	if n := r.store.evict(r.cfg.MaxBytes); n > 0 {
		r.m.evicted.Add(float64(n))
		r.log.Debug("evicted the oldest buckets", "buckets", n, "max_bytes", r.cfg.MaxBytes)
	}
	r.updateGauges()
	return nil
}

// expireLocked drops the pins past their time (by the clock) and what the
// window and the pins no longer keep. The window is measured back from the end
// of the newest interval recorded, not from the clock: a collector publishing
// late (a loaded node) loses nothing of its last Window, and a recorder no
// longer fed keeps its last Window (its memory does not grow).
func (r *Recorder) expireLocked(now time.Time) {
	cutoff := r.flushed.Add(-r.cfg.Window)
	r.store.expire(now, cutoff, cutoff.Add(-r.cfg.PinTTL))
}

// Pin keeps the pod's samples from `from` on past the window, until a Query
// starting at or before from fetches them or PinTTL has passed. It is safe on
// a nil Recorder (no recorder: nothing to keep).
func (r *Recorder) Pin(namespace, pod string, from time.Time) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return
	}
	now := r.cfg.Now()
	ps := r.store.pod(podKey{namespace, pod})
	ps.pins = append(ps.pins, pin{from: from, until: now.Add(r.cfg.PinTTL)})
	if len(ps.pins) > maxPinsPerPod {
		ps.pins = append(ps.pins[:0], ps.pins[len(ps.pins)-maxPinsPerPod:]...)
	}
	r.updateGauges()
	r.log.Debug("pinned", "namespace", namespace, "pod", pod, "from", from, "until", now.Add(r.cfg.PinTTL))
}

// WaitFlushed returns nil once an interval ending at or after t is recorded,
// else the cause of ctx's end (or ErrClosed).
func (r *Recorder) WaitFlushed(ctx context.Context, t time.Time) error {
	for {
		r.mu.Lock()
		closed, flushed, ch := r.closed, r.flushed, r.flushCh
		r.mu.Unlock()
		switch {
		case closed:
			return ErrClosed
		case !flushed.Before(t):
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// Flushed is the end of the newest interval recorded (zero before the first).
func (r *Recorder) Flushed() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed
}

// Interval is the longest collection interval recorded within the last
// window: how long a sample may wait before it is recorded. 0 before any.
func (r *Recorder) Interval() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.store.longestInterval(r.flushed.Add(-r.cfg.Window))
}

// Window is how long samples are kept.
func (r *Recorder) Window() time.Duration { return r.cfg.Window }

// Shutdown drops every sample and wakes the waiters; later calls fail with
// ErrClosed. It is idempotent.
func (r *Recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.flushCh)
	r.store = newStore()
	r.updateGauges()
	return nil
}

func (r *Recorder) updateGauges() {
	r.m.bytes.Set(float64(r.store.bytes))
	r.m.pods.Set(float64(r.store.podsWithData()))
	r.m.buckets.Set(float64(len(r.store.buckets)))
	r.m.pinned.Set(float64(r.store.pinnedPods()))
}
