package loader

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/lifecycle"
)

// Loader loads the unwind tables of the processes its Sampler reports unknown.
type Loader struct {
	cfg     Config
	log     *slog.Logger
	metrics *metrics
	run     lifecycle.Background

	mu        sync.Mutex // guards everything below; the loop holds it per step
	tables    *tables
	procs     map[uint32]*proc
	pending   []uint32
	queued    map[uint32]bool
	failed    map[uint32]time.Time // last failed load, to rate-limit retries
	lastCheck time.Time
	now       func() time.Time
}

// proc is a loaded process.
type proc struct {
	start    uint64 // /proc/PID/stat starttime: a reused pid is another process
	tables   []*table
	loadedAt time.Time
}

// Stats is a reading of the Loader's state.
type Stats struct {
	// Processes loaded in the sampler.
	Processes int
	// Tables in the kernel, and those of them no process uses (the LRU).
	Tables, CachedTables int
	// RowsInUse are held by tables of loaded processes, RowsCached by the LRU's;
	// RowCapacity is the size of the kernel's row array.
	RowsInUse, RowsCached, RowCapacity uint32
}

// New validates cfg (after SetDefaults) and returns a Loader; Start starts its loop.
func New(cfg Config) (*Loader, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer, cfg.Name)
	if err != nil {
		return nil, err
	}
	capacity := cfg.Sampler.RowCapacity()
	m.rowsCapacity.Set(float64(capacity))
	return &Loader{
		cfg:     cfg,
		log:     cfg.Logger,
		metrics: m,
		tables:  newTables(capacity, cfg.MaxCachedTables),
		procs:   make(map[uint32]*proc),
		queued:  make(map[uint32]bool),
		failed:  make(map[uint32]time.Time),
		now:     time.Now,
	}, nil
}

// Start runs the loop in the background and returns at once; it does not keep ctx.
func (l *Loader) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("unwind loader: start: %w", err)
	}
	l.run.Go(func(ctx context.Context) { lifecycle.Every(ctx, l.cfg.Every, l.Tick) })
	return nil
}

// Shutdown stops the loop, waiting for a load in progress until ctx ends. It is
// idempotent and safe without Start. The sampler's entries are left as they are:
// the sampler is closed next.
func (l *Loader) Shutdown(ctx context.Context) error {
	if err := l.run.Stop(ctx); err != nil {
		return fmt.Errorf("unwind loader: waiting for the loop: %w", err)
	}
	return nil
}

// Tick does one round of the loop: takes the unknown processes, loads a bounded
// number of the pending ones, and every ExitCheckEvery deletes the exited ones.
// The loop calls it; tests may call it without Start.
func (l *Loader) Tick(ctx context.Context) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.takeUnknown(); err != nil {
		l.log.Warn("taking the processes the sampler does not know", "err", err)
	}
	if now := l.now(); now.Sub(l.lastCheck) >= l.cfg.ExitCheckEvery {
		l.lastCheck = now
		l.deleteExited()
	}
	// Processes that exited before their turn cost one failed open each and
	// do not count against MaxLoadsPerTick: on a node that runs thousands of
	// short processes a second, they would otherwise hold the queue while the
	// ones still running behind them exit too.
	start := l.now()
	for tried, loads := 0, 0; loads < l.cfg.MaxLoadsPerTick && len(l.pending) > 0 && ctx.Err() == nil; tried++ {
		if tried > 0 && l.now().Sub(start) >= l.cfg.TickBudget {
			break
		}
		tgid := l.pending[0]
		l.pending = l.pending[1:]
		delete(l.queued, tgid)
		if l.loadOrSkip(tgid) {
			loads++
		}
	}
	if len(l.pending) == 0 {
		l.pending = nil // let the backing array go after a burst
	}
	l.updateGauges()
}

func (l *Loader) takeUnknown() error {
	tgids, err := l.cfg.Sampler.TakeUnknown()
	for _, tgid := range tgids {
		if l.queued[tgid] || len(l.pending) >= l.cfg.MaxPending {
			continue // dropped ones are reported again when sampled again
		}
		l.queued[tgid] = true
		l.pending = append(l.pending, tgid)
	}
	return err
}

// loadOrSkip loads tgid unless it was loaded or failed within ReloadEvery. It
// reports whether it tried a process that still runs.
func (l *Loader) loadOrSkip(tgid uint32) bool {
	now := l.now()
	if p := l.procs[tgid]; p != nil && now.Sub(p.loadedAt) < l.cfg.ReloadEvery {
		return false
	}
	if t, ok := l.failed[tgid]; ok && now.Sub(t) < l.cfg.ReloadEvery {
		return false
	}
	if err := l.load(tgid); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Exited: nothing to retry (a new process that takes the pid
			// is reported when it is sampled).
			l.metrics.processesGone.Inc()
			return false
		}
		l.failed[tgid] = now
		l.log.Debug("loading the unwind tables of a process", "pid", tgid, "err", err)
		return true
	}
	delete(l.failed, tgid)
	return true
}

// deleteExited deletes the loaded processes that exited (or whose pid now belongs
// to another process), and forgets old failures.
func (l *Loader) deleteExited() {
	for tgid, p := range l.procs {
		start, err := symbolize.ProcessStartTime(l.cfg.ProcRoot, int32(tgid))
		if err == nil && start == p.start {
			continue
		}
		l.deleteProc(tgid, p)
	}
	now := l.now()
	for tgid, t := range l.failed {
		if now.Sub(t) >= l.cfg.ReloadEvery {
			delete(l.failed, tgid)
		}
	}
}

func (l *Loader) deleteProc(tgid uint32, p *proc) {
	if err := l.cfg.Sampler.DeleteProcess(tgid); err != nil {
		l.log.Debug("deleting a process from the sampler", "pid", tgid, "err", err)
	}
	delete(l.procs, tgid)
	l.releaseAll(p.tables)
}

func (l *Loader) releaseAll(ts []*table) {
	for _, t := range ts {
		if n := l.tables.release(t); n > 0 {
			l.metrics.tablesEvicted.Add(float64(n))
		}
	}
}

func (l *Loader) updateGauges() {
	l.metrics.processes.Set(float64(len(l.procs)))
	l.metrics.rowsInUse.Set(float64(l.tables.rowsInUse))
	l.metrics.rowsCached.Set(float64(l.tables.rowsCached()))
}

// TableStat is one table in the kernel.
type TableStat struct {
	// Key identifies the file: "gnu:<hex build ID>", or "file:..." without one.
	Key  string
	Rows uint32
	// Refs counts the loaded processes using it; 0 means it is in the LRU.
	Refs int
}

// Tables lists the tables in the kernel.
func (l *Loader) Tables() []TableStat {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]TableStat, 0, len(l.tables.byKey))
	for _, t := range l.tables.byKey {
		out = append(out, TableStat{Key: t.key, Rows: t.n, Refs: t.refs})
	}
	return out
}

// Processes lists the processes loaded in the sampler, by tgid.
func (l *Loader) Processes() []uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Sorted(maps.Keys(l.procs))
}

// Stats returns the Loader's state now.
func (l *Loader) Stats() Stats {
	l.mu.Lock()
	defer l.mu.Unlock()
	return Stats{
		Processes:    len(l.procs),
		Tables:       len(l.tables.byKey),
		CachedTables: l.tables.lru.Len(),
		RowsInUse:    l.tables.rowsInUse,
		RowsCached:   l.tables.rowsCached(),
		RowCapacity:  l.tables.alloc.capacity,
	}
}
