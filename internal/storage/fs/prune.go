package fs

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/durable"
)

// Reasons a profile is pruned: the Pruner's own bounds (the whole directory) or
// the bounds of the config that wrote it (SetLimits).
const (
	ReasonMaxAge         = "max-age"
	ReasonMaxBytes       = "max-bytes"
	ReasonConfigMaxAge   = "config-max-age"
	ReasonConfigMaxBytes = "config-max-bytes"
)

// PruneReasons lists every reason, in the order a sweep applies them.
var PruneReasons = []string{ReasonMaxAge, ReasonConfigMaxAge, ReasonConfigMaxBytes, ReasonMaxBytes}

const (
	// DefaultPruneInterval is how often a Pruner sweeps without writes.
	DefaultPruneInterval = time.Minute
	// orphanGrace protects a sidecar whose profile is not in place yet: Put renames
	// the sidecar first, so a fresh sidecar alone is a Put in progress.
	orphanGrace = time.Minute
	// maxSidecarBytes bounds the read of one sidecar.
	maxSidecarBytes = 1 << 20
)

// Limits bound the profiles of one directory or one config. Zero fields are no bound.
type Limits struct {
	// MaxAge prunes profiles captured longer ago than this.
	MaxAge time.Duration
	// MaxBytes prunes the oldest profiles until the rest (profiles and sidecars) fit.
	MaxBytes int64
}

// IsZero reports whether l bounds nothing.
func (l Limits) IsZero() bool { return l.MaxAge <= 0 && l.MaxBytes <= 0 }

// Validate reports a negative bound.
func (l Limits) Validate() error {
	if l.MaxAge < 0 {
		return fmt.Errorf("MaxAge: must not be negative, got %s", l.MaxAge)
	}
	if l.MaxBytes < 0 {
		return fmt.Errorf("MaxBytes: must not be negative, got %d", l.MaxBytes)
	}
	return nil
}

// PrunerConfig configures a Pruner.
type PrunerConfig struct {
	// Dir is the directory whose profiles are pruned, with every store below it. Required.
	Dir string
	// Limits bound the whole directory; zero fields are no bound.
	Limits
	// Interval between sweeps (default DefaultPruneInterval). Writes that may exceed a
	// byte bound trigger a sweep sooner.
	Interval time.Duration
	// Now is the clock (default time.Now); tests set a fake one.
	Now func() time.Time
	// Metrics records pruned profiles and the directory's size; nil records nothing.
	Metrics *PruneMetrics
	Logger  *slog.Logger
}

// SetDefaults fills in Interval and Now.
func (c *PrunerConfig) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	check.Default(&c.Interval, DefaultPruneInterval)
	check.DefaultNow(&c.Now)
}

// Validate checks c.
func (c *PrunerConfig) Validate() error {
	if strings.TrimSpace(c.Dir) == "" {
		return errors.New("pruner config: Dir is required")
	}
	if err := c.Limits.Validate(); err != nil {
		return fmt.Errorf("pruner config: %w", err)
	}
	if c.Interval <= 0 {
		return fmt.Errorf("pruner config: Interval: must be positive, got %s", c.Interval)
	}
	return nil
}

// Pruner keeps a profiles directory (the fs stores below it) within its Limits and
// within per-config Limits: it deletes the oldest profiles first, by their sidecar's
// captured-at (the file's modification time when there is no readable sidecar),
// each together with its sidecar, profile first so a reader never sees a profile
// without metadata. Temporary files of writes in progress (".tmp-*") are neither
// counted nor touched, and a sidecar without its profile is removed only after a
// grace period (Put places the sidecar first). Directories emptied by pruning are
// removed (Put recreates them). It sweeps every Interval and after writes
// (Written) that may exceed a byte bound.
type Pruner struct {
	cfg PrunerConfig
	log *slog.Logger

	sweepMu sync.Mutex           // one sweep at a time
	cache   map[string]sidecarAt // sidecar path -> what was read from it (sweepMu)

	mu        sync.Mutex
	configs   map[string]Limits // by storage.Meta.Config
	lastBytes int64             // total of the last sweep
	lastByCfg map[string]int64  // per config, of the last sweep
	pending   int64             // written since the last sweep
	pendByCfg map[string]int64
	guard     lifecycle.Guard

	trigger chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup
}

// sidecarAt is what a sweep needs from a sidecar, kept while it is unchanged.
type sidecarAt struct {
	size       int64
	modTime    time.Time
	capturedAt time.Time
	config     string
}

// NewPruner validates cfg and returns a Pruner; Start runs its sweeps.
func NewPruner(cfg PrunerConfig) (*Pruner, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Pruner{
		cfg: cfg, log: cfg.Logger, cache: map[string]sidecarAt{},
		configs: map[string]Limits{}, lastByCfg: map[string]int64{}, pendByCfg: map[string]int64{},
		trigger: make(chan struct{}, 1), stop: make(chan struct{}),
	}, nil
}

// SetLimits sets the bounds of the profiles written by config (storage.Meta.Config);
// zero Limits remove them. The next sweep applies them.
func (p *Pruner) SetLimits(config string, l Limits) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if l.IsZero() {
		delete(p.configs, config)
		return
	}
	if old, ok := p.configs[config]; ok && old == l {
		return
	}
	p.configs[config] = l
	p.kickLocked()
}

// Written tells p that n bytes were stored for config; when that may exceed a byte
// bound, a sweep runs soon.
func (p *Pruner) Written(config string, n int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending += n
	p.pendByCfg[config] += n
	over := p.cfg.MaxBytes > 0 && p.lastBytes+p.pending > p.cfg.MaxBytes
	if l, ok := p.configs[config]; ok && l.MaxBytes > 0 && p.lastByCfg[config]+p.pendByCfg[config] > l.MaxBytes {
		over = true
	}
	if over {
		p.kickLocked()
	}
}

func (p *Pruner) kickLocked() {
	select {
	case p.trigger <- struct{}{}:
	default:
	}
}

// Start runs a sweep now and then every Interval and after writes, until Shutdown.
// It returns at once and does not keep ctx.
func (p *Pruner) Start(ctx context.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.guard.Start(ctx); err != nil {
		return fmt.Errorf("start pruner: %w", err)
	}
	p.wg.Add(1)
	go p.loop()
	return nil
}

// Shutdown stops the sweeps and waits for a running one until ctx ends (a sweep
// is cut short between two deletions). Idempotent and safe without Start.
func (p *Pruner) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if p.guard.Shutdown() {
		close(p.stop)
	}
	p.mu.Unlock()
	// Nothing to cancel: the sweep checks p.stop between two deletions.
	return lifecycle.Drain(ctx, &p.wg, nil, nil, "shut down pruner")
}

func (p *Pruner) loop() {
	defer p.wg.Done()
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.Sweep()
		select {
		case <-p.stop:
			return
		case <-t.C:
		case <-p.trigger:
		}
	}
}

// SweepResult is what one sweep did.
type SweepResult struct {
	// Pruned counts deleted profiles (and lone sidecars) by reason.
	Pruned map[string]int
	// FreedBytes is the size of what was deleted, by reason.
	FreedBytes map[string]int64
	// Profiles and Bytes are what is left (profiles with their sidecars).
	Profiles int
	Bytes    int64
	// Err joins the errors of the sweep; the sweep goes on past each one.
	Err error
}

// entry is one stored profile, or a sidecar without its profile.
type entry struct {
	key        string // profile path relative to Dir
	size       int64  // profile bytes, 0 without profile
	hasProfile bool
	sidecar    int64 // sidecar bytes, -1 without sidecar
	sideMod    time.Time
	profMod    time.Time
	at         time.Time // captured-at
	config     string
	reason     string // set when pruned
}

func (e *entry) bytes() int64 { return e.size + max(e.sidecar, 0) }

// Sweep prunes once and reports what it did; it also logs one line and updates the
// metrics. Safe to call concurrently with the periodic sweeps (they run one at a time).
func (p *Pruner) Sweep() SweepResult {
	p.sweepMu.Lock()
	defer p.sweepMu.Unlock()
	start := time.Now()
	now := p.cfg.Now()

	p.mu.Lock()
	p.pending = 0
	clear(p.pendByCfg)
	configs := make(map[string]Limits, len(p.configs))
	for k, v := range p.configs {
		configs[k] = v
	}
	p.mu.Unlock()

	res := SweepResult{Pruned: map[string]int{}, FreedBytes: map[string]int64{}}
	var errs []error
	root, err := os.OpenRoot(p.cfg.Dir)
	if err != nil {
		if !errors.Is(err, iofs.ErrNotExist) { // else nothing stored yet
			res.Err = fmt.Errorf("open profiles directory %s: %w", p.cfg.Dir, err)
		}
		p.report(res, start)
		return res
	}
	defer root.Close()

	entries, err := p.scan(root)
	if err != nil {
		errs = append(errs, err)
	}
	p.choose(entries, configs, now)

	byCfg := map[string]int64{}
	emptied := map[string]bool{}
	for _, e := range entries {
		if e.reason == "" || p.isStopping() {
			if e.reason != "" {
				e.reason = "" // not deleted: count it as left
			}
			if e.hasProfile {
				res.Profiles++
			}
			res.Bytes += e.bytes()
			byCfg[e.config] += e.bytes()
			continue
		}
		if err := remove(root, e); err != nil {
			errs = append(errs, err)
			continue
		}
		res.Pruned[e.reason]++
		res.FreedBytes[e.reason] += e.bytes()
		emptied[path.Dir(e.key)] = true
	}
	removeEmptyDirs(root, emptied)

	p.mu.Lock()
	p.lastBytes = res.Bytes
	p.lastByCfg = byCfg
	p.mu.Unlock()
	res.Err = errors.Join(errs...)
	p.report(res, start)
	return res
}

func (p *Pruner) isStopping() bool {
	select {
	case <-p.stop:
		return true
	default:
		return false
	}
}

// scan lists the profiles and sidecars below root, oldest first.
func (p *Pruner) scan(root *os.Root) ([]*entry, error) {
	byKey := map[string]*entry{}
	get := func(key string) *entry {
		e, ok := byKey[key]
		if !ok {
			e = &entry{key: key, sidecar: -1}
			byKey[key] = e
		}
		return e
	}
	var errs []error
	seen := map[string]bool{}
	walkErr := iofs.WalkDir(root.FS(), ".", func(name string, d iofs.DirEntry, err error) error {
		if err != nil {
			if !errors.Is(err, iofs.ErrNotExist) { // removed meanwhile
				errs = append(errs, fmt.Errorf("list %s: %w", name, err))
			}
			if d != nil && d.IsDir() {
				return iofs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() || durable.IsTemp(name) {
			return nil // directories, symbolic links, writes in progress
		}
		info, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		if key, ok := strings.CutSuffix(name, MetaSuffix); ok {
			e := get(key)
			e.sidecar, e.sideMod = info.Size(), info.ModTime()
			c, err := p.readSidecar(root, name, info)
			if err == nil {
				seen[name] = true
				e.at, e.config = c.capturedAt, c.config
			}
			return nil
		}
		e := get(name)
		e.hasProfile, e.size, e.profMod = true, info.Size(), info.ModTime()
		return nil
	})
	if walkErr != nil {
		errs = append(errs, walkErr)
	}
	for name := range p.cache {
		if !seen[name] {
			delete(p.cache, name)
		}
	}
	entries := make([]*entry, 0, len(byKey))
	for _, e := range byKey {
		if e.at.IsZero() { // no sidecar, unreadable, or without captured-at
			e.at = e.profMod
			if !e.hasProfile {
				e.at = e.sideMod
			}
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b *entry) int {
		return cmp.Or(a.at.Compare(b.at), cmp.Compare(a.key, b.key))
	})
	return entries, errors.Join(errs...)
}

// readSidecar returns the captured-at and config of a sidecar, from the cache
// while the file is unchanged.
func (p *Pruner) readSidecar(root *os.Root, name string, info iofs.FileInfo) (sidecarAt, error) {
	if c, ok := p.cache[name]; ok && c.size == info.Size() && c.modTime.Equal(info.ModTime()) {
		return c, nil
	}
	f, err := root.Open(name)
	if err != nil {
		return sidecarAt{}, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSidecarBytes+1))
	if err != nil {
		return sidecarAt{}, err
	}
	if len(b) > maxSidecarBytes {
		return sidecarAt{}, fmt.Errorf("sidecar %s: larger than %d bytes", name, maxSidecarBytes)
	}
	var m storage.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		return sidecarAt{}, fmt.Errorf("sidecar %s: %w", name, err)
	}
	c := sidecarAt{size: info.Size(), modTime: info.ModTime(), capturedAt: m.CapturedAt, config: m.Config}
	p.cache[name] = c
	return c, nil
}

// choose sets the reason of every entry to prune: past an age bound (the
// directory's, then its config's), then the oldest of a config over its byte
// bound, then the oldest of the directory over its byte bound. entries are oldest
// first. A sidecar without its profile is chosen only after orphanGrace.
func (p *Pruner) choose(entries []*entry, configs map[string]Limits, now time.Time) {
	prunable := func(e *entry) bool {
		return e.reason == "" && (e.hasProfile || now.Sub(e.sideMod) > orphanGrace)
	}
	for _, e := range entries {
		if !prunable(e) {
			continue
		}
		age := now.Sub(e.at)
		if p.cfg.MaxAge > 0 && age > p.cfg.MaxAge {
			e.reason = ReasonMaxAge
		} else if l := configs[e.config]; e.config != "" && l.MaxAge > 0 && age > l.MaxAge {
			e.reason = ReasonConfigMaxAge
		}
	}
	used := map[string]int64{}
	var total int64
	for _, e := range entries {
		if e.reason == "" {
			used[e.config] += e.bytes()
			total += e.bytes()
		}
	}
	for _, e := range entries {
		l := configs[e.config]
		if e.config == "" || l.MaxBytes <= 0 || used[e.config] <= l.MaxBytes || !prunable(e) {
			continue
		}
		e.reason = ReasonConfigMaxBytes
		used[e.config] -= e.bytes()
		total -= e.bytes()
	}
	if p.cfg.MaxBytes <= 0 {
		return
	}
	for _, e := range entries {
		if total <= p.cfg.MaxBytes {
			return
		}
		if prunable(e) {
			e.reason = ReasonMaxBytes
			total -= e.bytes()
		}
	}
}

// remove deletes a profile, then its sidecar.
func remove(root *os.Root, e *entry) error {
	if e.hasProfile {
		if err := root.Remove(e.key); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("prune %s: %w", e.key, err)
		}
	}
	if e.sidecar >= 0 {
		if err := root.Remove(e.key + MetaSuffix); err != nil && !errors.Is(err, iofs.ErrNotExist) {
			return fmt.Errorf("prune %s: remove its metadata: %w", e.key, err)
		}
	}
	return nil
}

// removeEmptyDirs removes each directory of dirs and its parents while they are
// empty (a failing Remove means "not empty" or "gone"; either ends the climb).
func removeEmptyDirs(root *os.Root, dirs map[string]bool) {
	// Deepest first, so a parent is tried after its children.
	list := make([]string, 0, len(dirs))
	for d := range dirs {
		list = append(list, d)
	}
	slices.SortFunc(list, func(a, b string) int { return cmp.Compare(strings.Count(b, "/"), strings.Count(a, "/")) })
	for _, d := range list {
		for d != "." && d != "/" && d != "" {
			if err := root.Remove(d); err != nil {
				break
			}
			d = path.Dir(d)
		}
	}
}

// report logs one line for the sweep and updates the metrics.
func (p *Pruner) report(res SweepResult, start time.Time) {
	p.cfg.Metrics.record(res)
	n, freed := 0, int64(0)
	for _, r := range PruneReasons {
		n += res.Pruned[r]
		freed += res.FreedBytes[r]
	}
	kv := []any{"dir", p.cfg.Dir, "pruned", n, "freedBytes", freed, "profiles", res.Profiles, "bytes", res.Bytes,
		"maxBytes", p.cfg.MaxBytes, "maxAge", p.cfg.MaxAge, "took", time.Since(start).Round(time.Millisecond)}
	for _, r := range PruneReasons {
		if c := res.Pruned[r]; c > 0 {
			kv = append(kv, r, c)
		}
	}
	switch {
	case res.Err != nil:
		p.log.Error("swept local profiles with errors", append(kv, "err", res.Err)...)
	case n > 0:
		p.log.Info("pruned local profiles", kv...)
	default:
		p.log.Debug("local profiles within retention", kv...)
	}
}

// Notifying returns s reporting each stored profile to p (Written), so a write
// that may exceed a byte bound is pruned without waiting for the next sweep.
func (p *Pruner) Notifying(s *Store) storage.Store { return notifyingStore{s: s, p: p} }

// notifyingStore is a value, so two of the same store compare equal.
type notifyingStore struct {
	s *Store
	p *Pruner
}

func (n notifyingStore) Put(ctx context.Context, key string, data []byte, meta storage.Meta) error {
	if err := n.s.Put(ctx, key, data, meta); err != nil {
		return err
	}
	n.p.Written(meta.Config, int64(len(data)))
	return nil
}

func (n notifyingStore) String() string { return n.s.String() }

func (n notifyingStore) Location(key string) string { return n.s.Location(key) }
