package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/agent/unwind/loader"
	"github.com/kprof/kprof/internal/lifecycle"
)

// DrainEvery is how often a started Collector drains the sampler within an
// interval, so that new processes are observed while they run.
const DrainEvery = time.Second

// sampler is what the Collector uses of *bpf.Sampler.
type sampler interface {
	Drain() ([]bpf.RawSample, bpf.Stats, error)
	Close() error
}

// Collector samples one collection config and publishes an Event per interval.
type Collector struct {
	cfg    Config
	log    *slog.Logger
	period uint64 // ns per sample for time events, 0 otherwise

	// lifeMu guards the lifecycle state and done, apart from mu, which a stuck
	// Collect holds.
	lifeMu   sync.Mutex
	guard    lifecycle.Guard
	stop     chan struct{} // closed by Shutdown
	done     chan struct{} // closed when the loop has returned; nil without Start
	shutOnce sync.Once
	shutErr  error

	// pubMu orders publishing against an abandoned Shutdown: once abandoned
	// (Shutdown gave up waiting for the loop), nothing is published.
	pubMu     sync.Mutex
	abandoned bool

	// loader gives the sampler the unwind tables of the processes it samples; nil
	// when the sampler has no unwinder. It runs from New until the sampler closes.
	loader *loader.Loader

	mu      sync.Mutex // guards everything below: one drain at a time
	sampler sampler    // nil once closed
	start   time.Time  // start of the current interval
	pending *batch     // counts drained within the current interval
	seen    map[int32]bool
	prev    map[int32]bool // pids that had samples in the previous interval
	// tables holds the symbol tables the previous interval used until the next one
	// is symbolized: nil without a batchSymbolizer.
	tables *symbolize.Batch
}

// New fills in cfg's defaults, validates it and opens the sampler for
// cfg.Collection. Sampling starts now; the first interval runs from New to the first
// Collect. Errors of bpf.Open are returned unwrapped: they name the missing
// capability or PMU.
func New(cfg Config) (*Collector, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s, err := bpf.Open(bpf.Config{
		Event:        cfg.Collection.Event,
		SamplePeriod: cfg.Collection.SamplePeriod,
		Frequency:    cfg.Collection.Frequency,
		ExcludePIDs:  cfg.ExcludePIDs,
		// The sampler's one warning (no unwind tables) went to slog.Default()
		// before a nil logger meant "discard"; it belongs in the collector's log.
		Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	c := newCollector(cfg, s)
	if err := c.startLoader(s); err != nil {
		_ = s.Close()
		return nil, err
	}
	return c, nil
}

// startLoader starts the unwind table loader of s when s walks stacks with tables.
func (c *Collector) startLoader(s any) error {
	us, ok := s.(loader.Sampler)
	if !ok {
		return nil
	}
	// The sampler may have fallen back to its frame-pointer-only program.
	if u, ok := s.(interface{ Unwinder() bool }); ok && !u.Unwinder() {
		c.log.Info("the sampler walks stacks by frame pointer only: no unwind tables are loaded")
		return nil
	}
	l, err := loader.New(loader.Config{
		Sampler:    us,
		ProcRoot:   c.cfg.ProcRoot,
		Registerer: c.cfg.Registerer,
		Name:       c.cfg.Collection.Name,
		Logger:     c.log.With("logger", "unwind"),
	})
	if err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	if err := l.Start(context.Background()); err != nil {
		return fmt.Errorf("collector: %w", err)
	}
	c.loader = l
	return nil
}

func newCollector(cfg Config, s sampler) *Collector {
	c := &Collector{
		cfg:     cfg,
		log:     cfg.Logger.With("collector", cfg.Collection.Name, "version", cfg.Collection.Version),
		stop:    make(chan struct{}),
		sampler: s,
		start:   time.Now(),
		pending: newBatch(),
		seen:    make(map[int32]bool),
		prev:    make(map[int32]bool),
	}
	if timeEvent(cfg.Collection.Event) {
		c.period = cfg.Collection.SamplePeriod
		if c.period == 0 && cfg.Collection.Frequency > 0 {
			c.period = uint64(time.Second) / cfg.Collection.Frequency
		}
	}
	return c
}

// Start runs the collection loop in the background: every Collection.Interval it
// calls Collect and Publish. It returns at once and does not keep ctx; Shutdown
// stops the loop. A second Start is an error.
func (c *Collector) Start(ctx context.Context) error {
	c.lifeMu.Lock()
	defer c.lifeMu.Unlock()
	if err := c.guard.Start(ctx); err != nil {
		return fmt.Errorf("collector: start: %w", err)
	}
	c.done = make(chan struct{}) // the sampler closes only in Shutdown, which the guard puts after this
	go c.loop()
	return nil
}

func (c *Collector) loop() {
	defer close(c.done)
	interval := time.NewTicker(c.cfg.Collection.Interval)
	defer interval.Stop()
	drain := time.NewTicker(min(DrainEvery, c.cfg.Collection.Interval))
	defer drain.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-drain.C:
			if err := c.drainPending(); err != nil {
				c.log.Warn("draining the sampler", "err", err)
			}
		case <-interval.C:
			c.collectAndPublish()
		}
	}
}

func (c *Collector) collectAndPublish() {
	ev, err := c.Collect()
	if err != nil {
		c.log.Warn("collecting a profile", "err", err)
	}
	if ev != nil {
		c.publish(ev)
	}
}

// publish hands ev to Publish unless Shutdown has given up on the loop.
func (c *Collector) publish(ev *profile.Event) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if c.abandoned {
		c.log.Warn("dropping an interval finished after Shutdown gave up waiting for it",
			"start", ev.Start, "end", ev.End)
		return
	}
	c.cfg.Publish(ev)
}

// drainPending drains the sampler into the current interval's counts and observes
// the pids seen for the first time.
func (c *Collector) drainPending() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drainLocked()
}

func (c *Collector) drainLocked() error {
	if c.sampler == nil {
		return bpf.ErrClosed
	}
	raw, stats, err := c.sampler.Drain()
	c.pending.add(raw, stats) // on error, what was read before it
	for _, r := range raw {
		pid := int32(r.TGID)
		if c.seen[pid] {
			continue
		}
		c.seen[pid] = true
		if oerr := c.cfg.Symbolizer.Observe(pid); oerr != nil {
			// The process may have exited already: its frames stay unnamed.
			c.log.Debug("observing a process", "pid", pid, "err", oerr)
		}
	}
	if err != nil {
		return fmt.Errorf("draining the %s sampler: %w", c.cfg.Collection.Event, err)
	}
	return nil
}

// Collect drains the sampler now and returns the interval since the previous
// Collect (or New) as an Event. On a drain error the Event holds what was read, and
// the error is returned with it.
func (c *Collector) Collect() (*profile.Event, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sampler == nil {
		return nil, bpf.ErrClosed
	}
	err := c.drainLocked()
	end := time.Now()
	b := c.pending
	c.pending = newBatch()
	ev := c.event(b, c.start, end)
	c.start = end
	c.forgetGone(b)
	return ev, err
}

// forgetGone forgets the pids that had no sample in two intervals in a row, so that
// the Symbolizer's and the collector's memory stays bounded and a reused pid is
// observed again.
func (c *Collector) forgetGone(b *batch) {
	now := b.pids()
	f, canForget := c.cfg.Symbolizer.(forgetter)
	for pid := range c.seen {
		if now[pid] || c.prev[pid] {
			continue
		}
		delete(c.seen, pid)
		if canForget {
			f.Forget(pid)
		}
	}
	c.prev = now
}

// Shutdown stops the loop, collects and publishes the last interval, and closes the
// sampler. It is idempotent and safe without Start. ctx bounds the wait for the
// loop: when it ends first (the loop is stuck in a long symbolization, say),
// Shutdown returns its error at once, the interval in progress is dropped
// rather than published late, and the sampler is closed when the loop returns.
func (c *Collector) Shutdown(ctx context.Context) error {
	c.shutOnce.Do(func() {
		close(c.stop)
		c.lifeMu.Lock()
		c.guard.Shutdown() // a later Start fails
		done := c.done     // settled: a Start holds lifeMu until it has set done
		c.lifeMu.Unlock()
		if done != nil {
			select {
			case <-done:
			case <-ctx.Done():
				c.pubMu.Lock()
				c.abandoned = true
				c.pubMu.Unlock()
				c.shutErr = fmt.Errorf("waiting for the collector loop: %w (its last interval is dropped)", ctx.Err())
				go func() {
					<-done
					if err := c.closeSampler(); err != nil {
						c.log.Warn("closing the sampler after an abandoned shutdown", "err", err)
					}
				}()
				return
			}
		}
		var errs []error
		c.collectAndPublishLast(&errs)
		if err := c.closeSampler(); err != nil {
			errs = append(errs, err)
		}
		c.shutErr = errors.Join(errs...)
	})
	return c.shutErr
}

// closeSampler closes the sampler once, and lets go of the symbol tables held; later
// Collects fail with bpf.ErrClosed.
func (c *Collector) closeSampler() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sampler == nil {
		return nil
	}
	if c.loader != nil {
		// Its loop stops between two processes: it writes to the sampler's maps.
		if err := c.loader.Shutdown(context.Background()); err != nil {
			c.log.Warn("stopping the unwind table loader", "err", err)
		}
	}
	err := c.sampler.Close()
	c.sampler = nil
	if c.tables != nil {
		c.tables.Close()
		c.tables = nil
	}
	if err != nil {
		return fmt.Errorf("closing the sampler: %w", err)
	}
	return nil
}

func (c *Collector) collectAndPublishLast(errs *[]error) {
	ev, err := c.Collect()
	if err != nil {
		*errs = append(*errs, err)
	}
	if ev != nil {
		c.publish(ev)
	}
}
