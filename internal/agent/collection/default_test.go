package collection

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTheEmbeddedDefaultIsCPUClockAt19HzEvery10s(t *testing.T) {
	d := Default()
	want := CollectionConfig{Name: "default-cpu", Version: 1, Event: "cpu-clock", Frequency: 19,
		Interval: 10 * time.Second, Source: DefaultSource}
	if d != want {
		t.Errorf("Default() = %+v, want %+v", d, want)
	}
}

// startDefaultWatcher is startWatcher with the embedded default.
func startDefaultWatcher(t *testing.T, dir string) (*Watcher, *changes) {
	t.Helper()
	d := Default()
	return startWatcherWith(t, dir, &d)
}

// runsOnly checks that the watcher runs exactly the named config.
func runsOnly(t *testing.T, w *Watcher, name, source string) {
	t.Helper()
	cur := w.Current()
	if len(cur) != 1 || cur[name].Source != source {
		t.Errorf("Current() = %v, want only %s from %s", cur, name, source)
	}
}

func TestWatcherRunsTheDefaultWhileTheDirectoryHoldsNoConfig(t *testing.T) {
	dir := t.TempDir()
	// Not configs: the directory is still empty.
	if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte("not a config"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, c := startDefaultWatcher(t, dir)
	runsOnly(t, w, "default-cpu", DefaultSource)
	c.waitFor("default-cpu added at Start", is(Added, "default-cpu", 1))

	t.Log("a file replaces the default, even one that reuses its name at the same version")
	f := filepath.Join(dir, "mine.yaml")
	writeAtomic(t, f, plainConfig("default-cpu", 1, 10000000))
	c.waitFor("the default removed", func(ch Change) bool {
		return ch.Kind == Removed && ch.Config.Source == DefaultSource
	})
	ch, _ := c.waitFor("the file's default-cpu added", is(Added, "default-cpu", 1))
	if ch.Config.Source != f || ch.Config.SamplePeriod != 10000000 {
		t.Errorf("added %+v, want the file's config (period 10000000 from %s)", ch.Config, f)
	}
	runsOnly(t, w, "default-cpu", f)

	t.Log("a rejected file is still a file: the default stays off")
	bad := filepath.Join(dir, "bad.yaml")
	writeAtomic(t, bad, "name: bad\n")
	c.waitFor("bad.yaml rejected", func(ch Change) bool { return ch.Kind == Rejected })
	if err := os.Remove(f); err != nil {
		t.Fatal(err)
	}
	c.waitFor("the file's default-cpu removed", func(ch Change) bool { return ch.Kind == Removed && ch.Config.Source == f })
	if cur := w.Current(); len(cur) != 0 {
		t.Errorf("Current() = %v with only a rejected file, want nothing running", cur)
	}

	t.Log("once the directory holds no config again, the default comes back")
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	ch, _ = c.waitFor("the default added again", is(Added, "default-cpu", 1))
	if ch.Config.Source != DefaultSource {
		t.Errorf("added %+v, want the embedded default", ch.Config)
	}
	runsOnly(t, w, "default-cpu", DefaultSource)
}

func TestWatcherRunsTheDefaultWhileTheDirectoryIsMissing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	w, c := startDefaultWatcher(t, dir)
	runsOnly(t, w, "default-cpu", DefaultSource)
	c.waitFor("default-cpu added at Start", is(Added, "default-cpu", 1))

	t.Log("the directory appears with a config: it replaces the default (seen by a file event, not the hourly resync)")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "cpu.yaml")
	writeAtomic(t, f, plainConfig("cpu", 1, 10000000))
	_, before := c.waitFor("cpu added", is(Added, "cpu", 1))
	if len(before) != 1 || before[0].Kind != Removed || before[0].Config.Source != DefaultSource {
		t.Errorf("before cpu was added: %v, want only the default removed", summarize(before))
	}
	runsOnly(t, w, "cpu", f)

	t.Log("a later file in the directory is seen: the directory itself is watched now")
	writeAtomic(t, filepath.Join(dir, "more.yaml"), plainConfig("more", 1, 10000000))
	c.waitFor("more added", is(Added, "more", 1))

	t.Log("the directory removed: the default comes back")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ch, _ := c.waitFor("the default added again", is(Added, "default-cpu", 1))
	if ch.Config.Source != DefaultSource {
		t.Errorf("added %+v, want the embedded default", ch.Config)
	}
}

func TestWatcherRejectsAnInvalidDefault(t *testing.T) {
	bad := Default()
	bad.Frequency = 0
	_, err := NewWatcher(WatcherConfig{Dir: t.TempDir(), Default: &bad})
	if err == nil || !strings.Contains(err.Error(), "Default:") || !strings.Contains(err.Error(), "SamplePeriod") {
		t.Fatalf("NewWatcher with a default lacking a rate = %v, want an error naming Default and the field", err)
	}
}
