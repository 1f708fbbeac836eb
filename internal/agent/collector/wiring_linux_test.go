//go:build linux

package collector

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
)

func TestCollectorRunsAnUnwindLoaderWithTheAgentsRegistry(t *testing.T) {
	requireSampling(t)
	reg := prometheus.NewRegistry()
	c, err := New(Config{
		Collection:  collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 99, Interval: time.Minute},
		Symbolizer:  newSymbolizer(t),
		Publish:     func(*profile.Event) {},
		ExcludePIDs: []uint32{uint32(os.Getpid())},
		Registerer:  reg,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	if c.loader == nil {
		t.Fatal("no unwind loader next to the sampler")
	}
	want := float64(c.loader.Stats().RowCapacity)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := -1.0
	for _, f := range families {
		if f.GetName() != "kprof_agent_unwind_rows_capacity" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "config" && l.GetValue() == "cpu" {
					got = m.GetGauge().GetValue()
				}
			}
		}
	}
	if got != want || want == 0 {
		t.Errorf("kprof_agent_unwind_rows_capacity{config=cpu} %v, want the sampler's %v rows", got, want)
	}
}
