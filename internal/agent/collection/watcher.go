package collection

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
)

// Source is what the agent needs of a config source: changes through the
// OnChange callback it was configured with, and the configs that run now.
type Source interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
	Current() map[string]CollectionConfig
}

var _ Source = (*Watcher)(nil)

// Defaults applied by WatcherConfig.SetDefaults.
const (
	DefaultDebounce = 100 * time.Millisecond
	DefaultResync   = 30 * time.Second
)

// WatcherConfig configures a Watcher.
type WatcherConfig struct {
	// Dir is the config directory, e.g. a mounted ConfigMap. Required.
	Dir string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// OnChange, when set, receives every change, one call at a time, from Start
	// (for the files already there) and then from the watcher's goroutine. It
	// must not block for long: changes wait for it. No call happens after
	// Shutdown returns nil.
	OnChange func(Change)
	// Debounce is how long the watcher waits after a file event before it scans
	// the directory, so that the several events of one ConfigMap update make one
	// scan. Default 100ms.
	Debounce time.Duration
	// Resync is how often the directory is scanned without any event, a safety
	// net for missed events. Default 30s.
	Resync time.Duration
	// Default, when set, runs while Dir is missing or holds no config file;
	// the first config file that appears replaces it. Without a Default, a
	// missing Dir fails Start.
	Default *CollectionConfig
}

// SetDefaults fills in the zero fields.
func (c *WatcherConfig) SetDefaults() {
	check.Default(&c.Debounce, DefaultDebounce)
	check.Default(&c.Resync, DefaultResync)
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every bad field by name; zero values other than Dir's are valid.
func (c *WatcherConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir: required"))
	}
	errs = append(errs, check.NotNegative("Debounce", c.Debounce), check.NotNegative("Resync", c.Resync))
	if c.Default != nil {
		if err := c.Default.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("Default: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Watcher follows a config directory. It lists the whole directory on any
// event in it (debounced) and every Resync, so a ConfigMap update, which
// kubelet makes by swapping the ..data symlink to a new ..<timestamp>
// directory under the per-file symlinks, is seen like any other write.
//
// Only regular files (or symlinks to them) directly in Dir whose names end in
// .yaml, .yml or .json are configs; hidden names (.x, ..data, ..2026_…) are not.
type Watcher struct {
	cfg WatcherConfig
	dir string

	lifeMu    sync.Mutex // Start and Shutdown
	guard     lifecycle.Guard
	stop      chan struct{}
	done      chan struct{}
	fw        *fsnotify.Watcher
	watching  bool            // fw watches dir; used by the scanning goroutine only
	parent    bool            // fw watches dir's parent, for dir to appear; scanning goroutine only
	defaulted bool            // the Default runs; scanning goroutine only
	skipped   map[string]bool // names already logged as not configs; scanning goroutine only

	mu      sync.Mutex // tracker.current
	tracker *tracker
}

// NewWatcher fills in cfg's defaults, validates it and returns a Watcher that has not
// started.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("config watcher: %w", err)
	}
	log := cfg.Logger.With("component", "config-watcher", "dir", cfg.Dir)
	cfg.Logger = log
	return &Watcher{
		cfg:     cfg,
		dir:     filepath.Clean(cfg.Dir),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		tracker: newTracker(log),
		skipped: map[string]bool{},
	}, nil
}

// Start watches the directory, reports the configs already there through
// OnChange before it returns, and follows the directory in a goroutine until
// Shutdown. It does not keep ctx.
func (w *Watcher) Start(ctx context.Context) error {
	w.lifeMu.Lock()
	if err := w.guard.Start(ctx); err != nil {
		w.lifeMu.Unlock()
		return fmt.Errorf("config watcher: start: %w", err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		w.lifeMu.Unlock()
		return fmt.Errorf("config watcher: %w", err)
	}
	// Watch before the first scan so that no change between the two is missed.
	// With a Default, a missing directory is no error: the Default runs, and
	// the parent is watched for the directory to appear.
	watching := true
	if err := fw.Add(w.dir); err != nil {
		if w.cfg.Default == nil || !errors.Is(err, fs.ErrNotExist) {
			w.lifeMu.Unlock()
			_ = fw.Close()
			return fmt.Errorf("config watcher: watch %s: %w", w.dir, err)
		}
		watching = false
	}
	w.fw, w.watching = fw, watching
	w.lifeMu.Unlock()

	// Not under the lifecycle lock, so that OnChange may call Shutdown.
	w.scan()
	go w.run()
	return nil
}

// Shutdown stops watching and waits, until ctx is done, for an OnChange call
// in progress. It is idempotent and safe without Start.
func (w *Watcher) Shutdown(ctx context.Context) error {
	w.lifeMu.Lock()
	if !w.guard.Shutdown() {
		w.lifeMu.Unlock()
		return nil
	}
	started := w.fw != nil // a Start that failed follows nothing
	if started {
		close(w.stop)
	}
	w.lifeMu.Unlock()
	if !started {
		return nil
	}
	var errs []error
	select {
	case <-w.done:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("config watcher: shutdown: an OnChange call has not returned: %w", ctx.Err()))
	}
	if err := w.fw.Close(); err != nil {
		errs = append(errs, fmt.Errorf("config watcher: close: %w", err))
	}
	return errors.Join(errs...)
}

// Current returns the configs that run now, by name.
func (w *Watcher) Current() map[string]CollectionConfig {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.tracker.current)
}

func (w *Watcher) run() {
	defer close(w.done)
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	armed := false
	arm := func() {
		if !armed {
			debounce.Reset(w.cfg.Debounce)
			armed = true
		}
	}
	resync := time.NewTicker(w.cfg.Resync)
	defer resync.Stop()
	events, errs := w.fw.Events, w.fw.Errors
	for {
		select {
		case <-w.stop:
			return
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Clean(ev.Name) == w.dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				w.watching = false // re-added by a later scan if the dir comes back
			}
			arm()
		case err, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow means events were lost: scan.
			w.cfg.Logger.Warn("file watch error; rescanning", "err", err)
			arm()
		case <-debounce.C:
			armed = false
			w.scan()
		case <-resync.C:
			w.scan()
		}
	}
}

// scan lists the directory, reconciles it with what runs and reports the changes.
func (w *Watcher) scan() {
	w.watch()
	files, err := w.readDir()
	if err != nil && w.cfg.Default != nil && errors.Is(err, fs.ErrNotExist) {
		files, err = nil, nil // a missing directory holds no config: the Default runs
	}
	w.mu.Lock()
	var changes []Change
	switch {
	case err != nil:
		changes = w.tracker.dirFailed(w.dir, err)
	case w.cfg.Default != nil && len(files) == 0:
		if !w.defaulted {
			w.defaulted = true
			d := w.cfg.Default
			w.cfg.Logger.Info("no collection configs in the config directory; running the embedded default until a config file appears there",
				"name", d.Name, "event", d.Event, "frequency", d.Frequency, "sample_period", d.SamplePeriod, "interval", d.Interval)
		}
		changes = w.tracker.reconcile([]fileResult{{path: w.cfg.Default.Source, cfg: *w.cfg.Default}})
	case w.defaulted:
		// The files replace the Default: stop it first, so that a file that
		// reuses its name starts afresh rather than competing on version.
		w.defaulted = false
		w.cfg.Logger.Info("collection configs found in the config directory; they replace the embedded default",
			"name", w.cfg.Default.Name)
		changes = append(w.tracker.reconcile(nil), w.tracker.reconcile(files)...)
	default:
		changes = w.tracker.reconcile(files)
	}
	w.mu.Unlock()
	for _, ch := range changes {
		w.logChange(ch)
		if w.cfg.OnChange != nil {
			w.cfg.OnChange(ch)
		}
	}
}

// watch adds the directory to the file watch when it is not watched (it was
// missing, or was removed and has come back). With a Default, while the
// directory is missing, its parent is watched so that its creation is seen.
func (w *Watcher) watch() {
	if w.watching {
		return
	}
	parent := filepath.Dir(w.dir)
	if err := w.fw.Add(w.dir); err == nil {
		w.watching = true
		if w.parent {
			_ = w.fw.Remove(parent)
			w.parent = false
		}
		return
	}
	if w.cfg.Default != nil && !w.parent && parent != w.dir {
		w.parent = w.fw.Add(parent) == nil
	}
}

func (w *Watcher) logChange(ch Change) {
	c := ch.Config
	switch ch.Kind {
	case Rejected:
		args := []any{"err", ch.Err}
		if c.Name != "" {
			args = append(args, "keeping", c.Name, "version", c.Version)
		}
		w.cfg.Logger.Error("config rejected", args...)
	case Updated:
		w.cfg.Logger.Info("config updated", "name", c.Name, "version", c.Version, "previous_version", ch.Previous.Version,
			"file", c.Source, "event", c.Event, "sample_period", c.SamplePeriod, "frequency", c.Frequency, "interval", c.Interval)
	default:
		w.cfg.Logger.Info("config "+ch.Kind.String(), "name", c.Name, "version", c.Version,
			"file", c.Source, "event", c.Event, "sample_period", c.SamplePeriod, "frequency", c.Frequency, "interval", c.Interval)
	}
}

// isConfigName reports whether a directory entry's name is a config file's.
func isConfigName(name string) bool {
	if strings.HasPrefix(name, ".") {
		return false // hidden, and kubelet's ..data and ..<timestamp>
	}
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

var errNotRegular = errors.New("not a regular file")

// readDir reads and parses every config file in the directory. A file that is
// gone by the time it is read (a symlink left dangling mid-swap) is absent.
func (w *Watcher) readDir() ([]fileResult, error) {
	entries, err := os.ReadDir(w.dir)
	if err != nil {
		return nil, err
	}
	var files []fileResult
	for _, e := range entries {
		if !isConfigName(e.Name()) {
			if !strings.HasPrefix(e.Name(), ".") && !w.skipped[e.Name()] {
				w.skipped[e.Name()] = true
				w.cfg.Logger.Info("ignoring file: configs end in .yaml, .yml or .json", "file", filepath.Join(w.dir, e.Name()))
			}
			continue
		}
		path := filepath.Join(w.dir, e.Name())
		data, err := readFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, errNotRegular):
			w.cfg.Logger.Debug("skipping entry that is not a regular file", "path", path)
			continue
		case err != nil:
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = fmt.Errorf("%s: %w", pe.Op, pe.Err) // the path is the FieldError's File
			}
			files = append(files, fileResult{path: path, err: &FieldError{File: path, Err: err}})
			continue
		}
		c, err := ParseFile(path, data)
		files = append(files, fileResult{path: path, cfg: c, err: err})
	}
	return files, nil
}

// readFile reads at most MaxFileSize+1 bytes of a regular file (following
// symlinks), so that ParseFile can reject a larger one without reading it all.
func readFile(path string) ([]byte, error) {
	// Stat before opening: opening a FIFO would block.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotRegular
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	return data, nil
}
