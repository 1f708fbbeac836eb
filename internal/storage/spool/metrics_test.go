package spool

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gauge returns the value of the gauge name for store, and whether it exists.
func gauge(t *testing.T, reg *prometheus.Registry, name, store string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "store" && l.GetValue() == store {
					return m.GetGauge().GetValue(), true
				}
			}
		}
	}
	return 0, false
}

func TestMetricsAreSharedByTheSpoolsOfAProcess(t *testing.T) {
	reg := prometheus.NewRegistry()
	metrics, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	a := newSpool(t, Config{Remote: newFakeRemote("a"), Metrics: metrics, Now: clock.Now})
	b := newSpool(t, Config{Remote: newFakeRemote("b"), Metrics: metrics, Now: clock.Now})
	put(t, a, "a/1", profile(1, 100))
	put(t, a, "a/2", profile(2, 50))
	clock.Advance(5 * time.Second)
	put(t, b, "b/1", profile(3, 7))
	clock.Advance(5 * time.Second)

	tests := []struct {
		name, metric, store string
		want                float64
	}{
		{name: "entries are counted per store", metric: "kprof_spool_entries", store: "fake://a", want: 2},
		{name: "entries of another store are its own", metric: "kprof_spool_entries", store: "fake://b", want: 1},
		{name: "bytes are counted per store", metric: "kprof_spool_bytes", store: "fake://a", want: 150},
		{name: "the oldest entry's age follows the clock", metric: "kprof_spool_oldest_entry_age_seconds", store: "fake://a", want: 10},
		{name: "the oldest entry's age is per store", metric: "kprof_spool_oldest_entry_age_seconds", store: "fake://b", want: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := gauge(t, reg, tt.metric, tt.store)
			if !ok || got != tt.want {
				t.Errorf("%s{store=%q} = %v (present %v), want %v", tt.metric, tt.store, got, ok, tt.want)
			}
		})
	}

	t.Run("a second live spool for the same store is refused", func(t *testing.T) {
		_, err := New(Config{Dir: filepath.Join(t.TempDir(), "x"), Remote: newFakeRemote("a"), Metrics: metrics})
		if err == nil || !strings.Contains(err.Error(), `"fake://a"`) {
			t.Fatalf("New = %v, want an error naming the store", err)
		}
	})

	t.Run("a shut down spool frees its store label", func(t *testing.T) {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, ok := gauge(t, reg, "kprof_spool_entries", "fake://a"); ok {
			t.Error("a shut down spool still reports kprof_spool_entries")
		}
		c := newSpool(t, Config{Dir: a.cfg.Dir, Remote: newFakeRemote("a"), Metrics: metrics, Now: clock.Now})
		if n, _ := c.Pending(); n != 2 {
			t.Errorf("the new spool for fake://a has %d entries, want 2", n)
		}
	})

	t.Run("registering the metrics twice fails", func(t *testing.T) {
		if _, err := NewMetrics(reg); err == nil {
			t.Error("NewMetrics on the same registry twice succeeded")
		}
	})
}
