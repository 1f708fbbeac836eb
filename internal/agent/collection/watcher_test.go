package collection

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitDeadline is generous: a change normally arrives within the debounce.
const waitDeadline = 20 * time.Second

func plainConfig(name string, version int64, period int) string {
	return fmt.Sprintf("name: %s\nversion: %d\nspec:\n  event: cpu-clock\n  samplePeriod: %d\n  intervalSeconds: 10\n", name, version, period)
}

// writeAtomic writes through a hidden temporary file and a rename, so that a
// scan never sees half a file (an in-place write would show up as a rejection).
func writeAtomic(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type changes struct {
	t  *testing.T
	ch chan Change
}

// startWatcher starts a Watcher on dir whose changes the test reads. Resync is
// an hour, so that what the tests see comes from file events.
func startWatcher(t *testing.T, dir string) (*Watcher, *changes) {
	t.Helper()
	return startWatcherWith(t, dir, nil)
}

// startWatcherWith is startWatcher with def as the embedded default (nil: none).
func startWatcherWith(t *testing.T, dir string, def *CollectionConfig) (*Watcher, *changes) {
	t.Helper()
	c := &changes{t: t, ch: make(chan Change, 1024)}
	w, err := NewWatcher(WatcherConfig{
		Dir:      dir,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnChange: func(ch Change) { c.ch <- ch },
		Resync:   time.Hour,
		Default:  def,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := w.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return w, c
}

// waitFor returns the first change that matches and the changes before it.
func (c *changes) waitFor(what string, match func(Change) bool) (Change, []Change) {
	c.t.Helper()
	var before []Change
	deadline := time.After(waitDeadline)
	for {
		select {
		case ch := <-c.ch:
			if match(ch) {
				return ch, before
			}
			before = append(before, ch)
		case <-deadline:
			c.t.Fatalf("no change %s within %s; saw %s", what, waitDeadline, strings.Join(summarize(before), "; "))
		}
	}
}

func is(kind ChangeKind, name string, version int64) func(Change) bool {
	return func(ch Change) bool { return ch.Kind == kind && ch.Config.Name == name && ch.Config.Version == version }
}

func TestWatcherFollowsADirectoryOfFiles(t *testing.T) {
	dir := t.TempDir()
	a := filepath.Join(dir, "cpu.yaml")
	writeAtomic(t, a, plainConfig("cpu", 1, 10000000))
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a config"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub.yaml"), 0o755); err != nil {
		t.Fatal(err)
	}
	w, c := startWatcher(t, dir)

	// Start reports what is there before it returns.
	if got := w.Current()["cpu"]; got.Version != 1 || got.Source != a {
		t.Fatalf("after Start, Current()[cpu] = %+v, want version 1 from %s", got, a)
	}
	if ch, before := c.waitFor("cpu added", is(Added, "cpu", 1)); len(before) > 0 || ch.Config.SamplePeriod != 10000000 {
		t.Fatalf("Start reported %s before %+v", summarize(before), ch)
	}

	t.Run("a higher version is an update", func(t *testing.T) {
		writeAtomic(t, a, plainConfig("cpu", 2, 20000000))
		ch, _ := c.waitFor("cpu updated to version 2", is(Updated, "cpu", 2))
		if ch.Config.SamplePeriod != 20000000 || ch.Previous.Version != 1 {
			t.Errorf("update %+v, want period 20000000 replacing version 1", ch)
		}
	})

	t.Run("the same version with other content is ignored", func(t *testing.T) {
		writeAtomic(t, a, plainConfig("cpu", 2, 30000000))
		// A later file is seen by the same or a later scan, so its addition
		// comes after anything the ignored write could have caused.
		writeAtomic(t, filepath.Join(dir, "sentinel.yaml"), plainConfig("sentinel", 1, 1))
		_, before := c.waitFor("sentinel added", is(Added, "sentinel", 1))
		for _, ch := range before {
			if ch.Config.Name == "cpu" {
				t.Errorf("the same version caused %s", summarize([]Change{ch}))
			}
		}
		if got := w.Current()["cpu"]; got.Version != 2 || got.SamplePeriod != 20000000 {
			t.Errorf("Current()[cpu] = %+v, want version 2 with period 20000000 still", got)
		}
	})

	t.Run("a corrupt update is rejected naming file and field and the last good config keeps running", func(t *testing.T) {
		writeAtomic(t, a, "name: cpu\nversion: 3\nspec:\n  event: cpu-clock\n  samplePeriod: 1\n  intervalSeconds: 0\n")
		ch, _ := c.waitFor("cpu.yaml rejected", func(ch Change) bool { return ch.Kind == Rejected })
		var fe *FieldError
		if !errors.As(ch.Err, &fe) || fe.File != a || fe.Field != "spec.intervalSeconds" {
			t.Errorf("rejection %v does not name %s and spec.intervalSeconds", ch.Err, a)
		}
		if ch.Config.Name != "cpu" || ch.Config.Version != 2 {
			t.Errorf("rejection keeps %+v, want cpu version 2", ch.Config)
		}
		if got := w.Current()["cpu"]; got.Version != 2 || got.SamplePeriod != 20000000 {
			t.Errorf("Current()[cpu] = %+v, want the last good version 2", got)
		}
	})

	t.Run("a deleted file is removed", func(t *testing.T) {
		if err := os.Remove(a); err != nil {
			t.Fatal(err)
		}
		ch, _ := c.waitFor("cpu removed", is(Removed, "cpu", 2))
		if ch.Config.Source != a {
			t.Errorf("removed %+v, want the config from %s", ch.Config, a)
		}
		if _, ok := w.Current()["cpu"]; ok {
			t.Errorf("Current() still has cpu: %v", w.Current())
		}
	})
}

func TestWatcherRejectsAHugeFileAtStart(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	data := append([]byte(plainConfig("huge", 1, 1)+"# "), make([]byte, 2*MaxFileSize)...)
	if err := os.WriteFile(huge, data, 0o644); err != nil {
		t.Fatal(err)
	}
	w, c := startWatcher(t, dir)
	ch, _ := c.waitFor("huge.yaml rejected", func(ch Change) bool { return ch.Kind == Rejected })
	var fe *FieldError
	if !errors.As(ch.Err, &fe) || fe.File != huge || !strings.Contains(ch.Err.Error(), "limit") {
		t.Errorf("rejection %v, want a size error naming %s", ch.Err, huge)
	}
	if len(w.Current()) != 0 {
		t.Errorf("Current() = %v, want nothing", w.Current())
	}
}

// configMap lays out dir as kubelet's AtomicWriter does for a ConfigMap volume:
// Dir/..<timestamp>/<key>, Dir/..data → ..<timestamp>, Dir/<key> → ..data/<key>.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func (m *configMap) write(files map[string]string) {
	t := m.t
	m.n++
	ts := fmt.Sprintf("..2026_11_23_10_00_%02d.00000000%d", m.n, m.n)
	if err := os.Mkdir(filepath.Join(m.dir, ts), 0o755); err != nil {
		t.Fatal(err)
	}
	for key, content := range files {
		if err := os.WriteFile(filepath.Join(m.dir, ts, key), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old, _ := os.Readlink(filepath.Join(m.dir, "..data"))
	// The swap: a new symlink renamed over ..data, in one step.
	if err := os.Symlink(ts, filepath.Join(m.dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(m.dir, "..data_tmp"), filepath.Join(m.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	// New keys get their user-visible symlinks; the old directory and the
	// symlinks of keys no longer there go.
	for key := range files {
		link := filepath.Join(m.dir, key)
		if _, err := os.Lstat(link); errors.Is(err, os.ErrNotExist) {
			if err := os.Symlink(filepath.Join("..data", key), link); err != nil {
				t.Fatal(err)
			}
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(m.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
	entries, err := os.ReadDir(m.dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, kept := files[e.Name()]; !kept && !strings.HasPrefix(e.Name(), ".") {
			if err := os.Remove(filepath.Join(m.dir, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestWatcherSeesAConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	cm := &configMap{t: t, dir: dir}
	cm.write(map[string]string{
		"cpu.yaml": plainConfig("cpu", 1, 10000000),
		"mem.yaml": plainConfig("mem", 1, 10000000),
	})
	w, c := startWatcher(t, dir)
	c.waitFor("cpu added", is(Added, "cpu", 1))
	c.waitFor("mem added", is(Added, "mem", 1))

	cm.write(map[string]string{
		"cpu.yaml": plainConfig("cpu", 2, 20000000),
		"io.yaml":  plainConfig("io", 1, 10000000),
	})
	want := map[string]func(Change) bool{
		"cpu updated to 2": is(Updated, "cpu", 2),
		"io added":         is(Added, "io", 1),
		"mem removed":      is(Removed, "mem", 1),
	}
	var seen []Change
	for len(want) > 0 {
		ch, before := c.waitFor(fmt.Sprintf("among %d more expected", len(want)), func(ch Change) bool {
			for what, match := range want {
				if match(ch) {
					delete(want, what)
					return true
				}
			}
			return false
		})
		seen = append(append(seen, before...), ch)
	}
	for _, ch := range seen {
		if ch.Kind == Rejected {
			t.Errorf("the swap caused a rejection: %v", ch.Err)
		}
	}
	cur := w.Current()
	if len(cur) != 2 || cur["cpu"].Version != 2 || cur["cpu"].SamplePeriod != 20000000 || cur["io"].Source != filepath.Join(dir, "io.yaml") {
		t.Errorf("Current() = %+v, want cpu version 2 and io", cur)
	}

	// The same keys with new content: only the hidden ..data symlink changes.
	cm.write(map[string]string{
		"cpu.yaml": plainConfig("cpu", 3, 30000000),
		"io.yaml":  plainConfig("io", 1, 10000000),
	})
	if ch, _ := c.waitFor("cpu updated to 3", is(Updated, "cpu", 3)); ch.Config.SamplePeriod != 30000000 {
		t.Errorf("update %+v, want period 30000000", ch.Config)
	}
}

func TestWatcherLifecycle(t *testing.T) {
	newW := func(t *testing.T, dir string) *Watcher {
		w, err := NewWatcher(WatcherConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	t.Run("Shutdown without Start is safe and idempotent", func(t *testing.T) {
		w := newW(t, t.TempDir())
		for i := range 2 {
			if err := w.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown %d: %v", i, err)
			}
		}
		if err := w.Start(context.Background()); err == nil {
			t.Fatal("Start after Shutdown succeeded")
		}
	})
	t.Run("Shutdown after Start is idempotent and Start twice is an error", func(t *testing.T) {
		w := newW(t, t.TempDir())
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := w.Start(context.Background()); err == nil {
			t.Error("a second Start succeeded")
		}
		for i := range 2 {
			if err := w.Shutdown(context.Background()); err != nil {
				t.Fatalf("Shutdown %d: %v", i, err)
			}
		}
	})
	t.Run("Start does not keep its context", func(t *testing.T) {
		dir := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		_, c := func() (*Watcher, *changes) {
			c := &changes{t: t, ch: make(chan Change, 16)}
			w, err := NewWatcher(WatcherConfig{Dir: dir, OnChange: func(ch Change) { c.ch <- ch }})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Start(ctx); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
			return w, c
		}()
		cancel()
		writeAtomic(t, filepath.Join(dir, "cpu.yaml"), plainConfig("cpu", 1, 1))
		c.waitFor("cpu added after Start's context ended", is(Added, "cpu", 1))
	})
	t.Run("Start on a missing directory names it", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope")
		w := newW(t, missing)
		err := w.Start(context.Background())
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("Start = %v, want an error naming %s", err, missing)
		}
		if err := w.Shutdown(context.Background()); err != nil {
			t.Fatalf("Shutdown after a failed Start: %v", err)
		}
	})
}

func TestWatcherConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  WatcherConfig
		want string
	}{
		{"a missing Dir is named", WatcherConfig{}, "Dir: required"},
		{"a negative Debounce is named", WatcherConfig{Dir: "d", Debounce: -1}, "Debounce: must not be negative"},
		{"a negative Resync is named", WatcherConfig{Dir: "d", Resync: -time.Second}, "Resync: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewWatcher(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewWatcher = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	cfg := WatcherConfig{Dir: "d"}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil || cfg.Debounce != DefaultDebounce || cfg.Resync != DefaultResync || cfg.Logger == nil {
		t.Fatalf("Validate() = %v with %+v, want the defaults", err, cfg)
	}
}
