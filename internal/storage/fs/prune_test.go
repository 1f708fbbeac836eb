package fs

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/storage"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}
func (c *fakeClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *fakeClock) Set(t time.Time)     { c.ns.Store(t.UnixNano()) }
func (c *fakeClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

func newPruner(t *testing.T, dir string, l Limits, clock *fakeClock) (*Pruner, *PruneMetrics) {
	t.Helper()
	m, err := NewPruneMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPruner(PrunerConfig{Dir: dir, Limits: l, Now: clock.Now, Metrics: m, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("NewPruner: %v", err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p, m
}

// put stores a profile of size bytes captured at at by config.
func put(t *testing.T, s *Store, key, config string, at time.Time, size int) {
	t.Helper()
	meta := storage.Meta{Namespace: "ns", Pod: "p", Type: "cpu", Config: config, CapturedAt: at}
	if err := s.Put(context.Background(), key, bytes.Repeat([]byte{'x'}, size), meta); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

// entryBytes is the size of a stored profile and its sidecar.
func entryBytes(t *testing.T, dir, key string) int64 {
	t.Helper()
	var n int64
	for _, name := range []string{key, key + MetaSuffix} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		n += info.Size()
	}
	return n
}

func wantFiles(t *testing.T, dir string, want ...string) {
	t.Helper()
	got := listFiles(t, dir)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("files below %s:\n got %q\nwant %q", dir, got, want)
	}
}

func TestPrunerDeletesProfilesOlderThanMaxAgeWithTheirSidecars(t *testing.T) {
	s := newStore(t)
	put(t, s, "ns/svc/a.pb.gz", "ns/pc", t0, 100)
	put(t, s, "ns/svc/b.pb.gz", "ns/pc", t0.Add(time.Hour), 100)
	put(t, s, "ns/svc/c.pb.gz", "ns/pc", t0.Add(2*time.Hour), 100)
	clock := newFakeClock(t0.Add(2*time.Hour + 30*time.Minute))
	p, m := newPruner(t, s.Dir(), Limits{MaxAge: time.Hour}, clock)

	res := p.Sweep()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantFiles(t, s.Dir(), "ns/svc/c.pb.gz", "ns/svc/c.pb.gz.json")
	if res.Pruned[ReasonMaxAge] != 2 || res.Profiles != 1 {
		t.Fatalf("sweep pruned %v and left %d profiles, want 2 max-age and 1 left", res.Pruned, res.Profiles)
	}
	if got := testutil.ToFloat64(m.pruned.WithLabelValues(ReasonMaxAge)); got != 2 {
		t.Fatalf("kprof_local_profiles_pruned_total{reason=max-age} = %v, want 2", got)
	}

	t.Run("the clock moving on prunes the last one and the emptied directories", func(t *testing.T) {
		clock.Add(time.Hour)
		if res := p.Sweep(); res.Err != nil || res.Pruned[ReasonMaxAge] != 1 {
			t.Fatalf("sweep: pruned %v, err %v; want 1 max-age", res.Pruned, res.Err)
		}
		entries, err := os.ReadDir(s.Dir())
		if err != nil || len(entries) != 0 {
			t.Fatalf("profiles directory holds %v (err %v), want it empty and still there", entries, err)
		}
		put(t, s, "ns/svc/d.pb.gz", "ns/pc", clock.Now(), 10) // Put recreates what was removed
	})
}

func TestPrunerDeletesTheOldestByCapturedAtUntilMaxBytesFits(t *testing.T) {
	s := newStore(t)
	// Written newest first and named against their age, so neither the modification
	// time nor the name gives the captured-at order.
	put(t, s, "a/3.pb.gz", "", t0.Add(3*time.Minute), 300)
	put(t, s, "b/1.pb.gz", "", t0.Add(1*time.Minute), 100)
	put(t, s, "c/2.pb.gz", "", t0.Add(2*time.Minute), 200)
	limit := entryBytes(t, s.Dir(), "a/3.pb.gz") + entryBytes(t, s.Dir(), "c/2.pb.gz")
	p, m := newPruner(t, s.Dir(), Limits{MaxBytes: limit}, newFakeClock(t0.Add(time.Hour)))

	res := p.Sweep()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantFiles(t, s.Dir(), "a/3.pb.gz", "a/3.pb.gz.json", "c/2.pb.gz", "c/2.pb.gz.json")
	if res.Bytes != limit || res.Pruned[ReasonMaxBytes] != 1 {
		t.Fatalf("sweep left %d bytes and pruned %v, want %d bytes left and 1 max-bytes", res.Bytes, res.Pruned, limit)
	}
	if got := testutil.ToFloat64(m.bytes); got != float64(limit) {
		t.Fatalf("kprof_local_profiles_bytes = %v, want %d", got, limit)
	}

	t.Run("one byte less prunes the next oldest", func(t *testing.T) {
		p.cfg.MaxBytes = limit - 1
		res := p.Sweep()
		wantFiles(t, s.Dir(), "a/3.pb.gz", "a/3.pb.gz.json")
		if got := testutil.ToFloat64(m.pruned.WithLabelValues(ReasonMaxBytes)); got != 2 || res.Profiles != 1 {
			t.Fatalf("kprof_local_profiles_pruned_total{reason=max-bytes} = %v with %d profiles left, want 2 and 1", got, res.Profiles)
		}
	})
}

func TestPrunerLeavesTemporaryFilesAndFreshLoneSidecarsAlone(t *testing.T) {
	s := newStore(t)
	put(t, s, "x/old.pb.gz", "", t0, 100)
	dir := filepath.Join(s.Dir(), "x")
	// A write in progress: its temporary files, and a sidecar already renamed into
	// place whose profile is not yet (Put's order).
	for name, data := range map[string]string{
		".tmp-0123456789abcdef": strings.Repeat("t", 4096),
		"new.pb.gz.json":        `{"type":"cpu","captured-at":"2026-12-01T12:00:00Z"}`,
		"gone.pb.gz.json":       `{"type":"cpu","captured-at":"2026-12-01T12:00:00Z"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// The lone sidecar of a crashed Put, written long ago.
	old := t0.Add(-time.Hour)
	if err := os.Chtimes(filepath.Join(dir, "gone.pb.gz.json"), old, old); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(time.Now())
	p, _ := newPruner(t, s.Dir(), Limits{MaxAge: time.Second, MaxBytes: 1}, clock)

	res := p.Sweep()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantFiles(t, s.Dir(), "x/.tmp-0123456789abcdef", "x/new.pb.gz.json")
	if res.Pruned[ReasonMaxAge] != 2 {
		t.Fatalf("pruned %v, want 2 max-age (the old profile with its sidecar, the stale lone sidecar)", res.Pruned)
	}

	t.Run("a lone sidecar past the grace period goes, the temporary file stays", func(t *testing.T) {
		clock.Add(orphanGrace + time.Second)
		p.Sweep()
		wantFiles(t, s.Dir(), "x/.tmp-0123456789abcdef")
	})
}

func TestPrunerAppliesTheLimitsOfEachConfigToItsOwnProfiles(t *testing.T) {
	s := newStore(t)
	for i, cfg := range []string{"ns/a", "ns/b", "ns/a", "ns/b", "ns/a"} {
		put(t, s, cfg+"/"+string(rune('0'+i))+".pb.gz", cfg, t0.Add(time.Duration(i)*time.Minute), 100)
	}
	p, _ := newPruner(t, s.Dir(), Limits{}, newFakeClock(t0.Add(10*time.Minute)))

	p.SetLimits("ns/a", Limits{MaxBytes: entryBytes(t, s.Dir(), "ns/a/4.pb.gz")})
	p.SetLimits("ns/b", Limits{MaxAge: 8*time.Minute + 30*time.Second})
	res := p.Sweep()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	wantFiles(t, s.Dir(), "ns/a/4.pb.gz", "ns/a/4.pb.gz.json", "ns/b/3.pb.gz", "ns/b/3.pb.gz.json")
	if res.Pruned[ReasonConfigMaxBytes] != 2 || res.Pruned[ReasonConfigMaxAge] != 1 {
		t.Fatalf("pruned %v, want 2 config-max-bytes (ns/a) and 1 config-max-age (ns/b)", res.Pruned)
	}

	t.Run("removed limits prune nothing more", func(t *testing.T) {
		p.SetLimits("ns/b", Limits{})
		p.cfg.Now = newFakeClock(t0.Add(time.Hour)).Now
		if res := p.Sweep(); len(listFiles(t, s.Dir())) != 4 {
			t.Fatalf("pruned %v after the limits of ns/b were removed", res.Pruned)
		}
	})
}

func TestPrunerWithoutSidecarUsesTheModificationTime(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "agent.pb.gz")
	if err := os.WriteFile(name, []byte("profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, t0, t0); err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(t0.Add(59 * time.Minute))
	p, _ := newPruner(t, dir, Limits{MaxAge: time.Hour}, clock)
	if res := p.Sweep(); res.Pruned[ReasonMaxAge] != 0 {
		t.Fatalf("pruned %v a profile modified 59 minutes ago with a max age of 1h", res.Pruned)
	}
	clock.Add(2 * time.Minute)
	if res := p.Sweep(); res.Pruned[ReasonMaxAge] != 1 {
		t.Fatalf("pruned %v, want the profile modified 61 minutes ago", res.Pruned)
	}
	wantFiles(t, dir)
}

func TestPrunerSweepsWhenAWriteMayExceedMaxBytes(t *testing.T) {
	s := newStore(t)
	put(t, s, "first.pb.gz", "", t0, 100)
	m, err := NewPruneMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPruner(PrunerConfig{
		Dir: s.Dir(), Limits: Limits{MaxBytes: 2 * entryBytes(t, s.Dir(), "first.pb.gz")},
		Interval: time.Hour, Now: newFakeClock(t0).Now, Metrics: m, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	waitFor(t, "the first sweep to count the first profile", func() bool { return testutil.ToFloat64(m.profiles) == 1 })

	for i, key := range []string{"second.pb.gz", "third.pb.gz"} {
		put(t, s, key, "", t0.Add(time.Duration(i+1)*time.Minute), 100)
		p.Written("", entryBytes(t, s.Dir(), key))
	}
	waitFor(t, "the oldest profile's sidecar (removed after the profile) to be pruned", func() bool {
		_, err := os.Stat(filepath.Join(s.Dir(), "first.pb.gz.json"))
		return os.IsNotExist(err)
	})
	wantFiles(t, s.Dir(), "second.pb.gz", "second.pb.gz.json", "third.pb.gz", "third.pb.gz.json")
}

func TestPrunerLifecycle(t *testing.T) {
	p, _ := newPruner(t, t.TempDir(), Limits{}, newFakeClock(t0))
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown without Start: %v", err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if err := p.Start(context.Background()); err == nil {
		t.Fatal("Start after Shutdown succeeded")
	}
}

func TestPrunerConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  PrunerConfig
		want string
	}{
		{"a missing directory", PrunerConfig{}, "Dir is required"},
		{"a negative max age", PrunerConfig{Dir: "d", Limits: Limits{MaxAge: -time.Second}}, "MaxAge: must not be negative"},
		{"negative max bytes", PrunerConfig{Dir: "d", Limits: Limits{MaxBytes: -1}}, "MaxBytes: must not be negative"},
		{"a negative interval", PrunerConfig{Dir: "d", Interval: -time.Second}, "Interval: must be positive"},
	} {
		t.Run(tc.name+" is rejected", func(t *testing.T) {
			_, err := NewPruner(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewPruner: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPutSucceedsWhileSweepsRemoveEmptiedDirectories(t *testing.T) {
	s := newStore(t)
	p, _ := newPruner(t, s.Dir(), Limits{MaxBytes: 1}, newFakeClock(t0))
	done := make(chan struct{})
	sweeps := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-done:
				sweeps <- n
				return
			default:
				p.Sweep()
				n++
			}
		}
	}()
	for i := range 300 {
		meta := storage.Meta{Type: "cpu", CapturedAt: t0}
		if err := s.Put(context.Background(), fmt.Sprintf("ns/svc/day/%d.pb.gz", i), []byte("x"), meta); err != nil {
			close(done)
			<-sweeps
			t.Fatalf("Put %d while sweeps prune everything: %v", i, err)
		}
	}
	close(done)
	if n := <-sweeps; n == 0 {
		t.Fatal("no sweep ran during the Puts")
	}
}
