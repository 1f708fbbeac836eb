//go:build linux

package otlp

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/testenv"
)

// eventTotals are the sample count and CPU time of an event.
func eventTotals(evs ...*profile.Event) (count, cpu int64) {
	for _, ev := range evs {
		for _, s := range ev.Samples {
			count += int64(s.Count)
			cpu += int64(s.CPUTime)
		}
	}
	return count, cpu
}

// hasAllSamples reports whether the collector wrote every sample of evs.
func hasAllSamples(evs ...*profile.Event) func([]pprofile.Profiles) bool {
	count, _ := eventTotals(evs...)
	return func(pds []pprofile.Profiles) bool { return totals(pds...)["samples/count"] >= count }
}

func hasPoints(n int) func([]pmetric.Metrics) bool {
	return func(mds []pmetric.Metrics) bool {
		got := 0
		for _, md := range mds {
			got += md.DataPointCount()
		}
		return got >= n
	}
}

func TestRealCollectorReceivesProfilesAndMetrics(t *testing.T) {
	col := testenv.StartOTelCollector(t)
	cfg := Config{Endpoint: col.Endpoint(), Insecure: true, Compression: CompressionGzip}
	p := newTestProfiles(t, cfg)
	m := newTestMetrics(t, cfg)
	ev := testEvent()
	if err := p.Consume(testCtx(t), ev); err != nil {
		t.Fatalf("export profiles: %v", err)
	}
	readings := testMetrics()
	if err := m.Consume(testCtx(t), readings); err != nil {
		t.Fatalf("export metrics: %v", err)
	}

	t.Run("every sample arrives with its values", func(t *testing.T) {
		pds := col.WaitProfiles(t, hasAllSamples(ev))
		count, cpu := eventTotals(ev)
		if got := totals(pds...); got["samples/count"] != count || got["cpu/nanoseconds"] != cpu {
			t.Errorf("collector wrote totals %v, want samples/count %d and cpu/nanoseconds %d", got, count, cpu)
		}
		var samples int
		for _, pd := range pds {
			samples += pd.SampleCount()
		}
		if samples != 8 {
			t.Errorf("collector wrote %d samples, want 8 (4 per profile type)", samples)
		}
	})
	t.Run("resources carry the pod and process attributes", func(t *testing.T) {
		pds := col.WaitProfiles(t, hasAllSamples(ev))
		_, rp := resourceByPID(t, pds, 4242)
		got := attrMap(rp.Resource().Attributes())
		want := map[string]string{
			"k8s.pod.name": "web-0", "k8s.namespace.name": "shop", "k8s.container.name": "app",
			"k8s.pod.uid": "8a4f6d2e-0000-4000-8000-000000000001", "k8s.node.name": "node-a", "k8s.cluster.name": "prod-eu",
			"host.name": "node-a", "container.id": "c0ffee0000000000000000000000000000000000000000000000000000000001",
			"process.pid": "4242", "process.executable.name": "server", "process.executable.path": "/app/server",
			"service.name": "web", "service.namespace": "shop", "service.instance.id": "shop.web-0.app", "service.version": "1.2",
		}
		if !maps.Equal(got, want) {
			t.Errorf("resource of pid 4242\n got %v\nwant %v", got, want)
		}
		_, host := resourceByPID(t, pds, 1)
		if _, ok := host.Resource().Attributes().Get("k8s.pod.name"); ok {
			t.Error("the host process has a pod name")
		}
	})
	t.Run("functions, inline frames and kernel frames survive", func(t *testing.T) {
		pds := col.WaitProfiles(t, hasAllSamples(ev))
		pd, rp := resourceByPID(t, pds, 4242)
		var stacks [][]string
		eachProfile(pd, func(r pprofile.ResourceProfiles, p pprofile.Profile) {
			if r == rp {
				for i := range p.Samples().Len() {
					stacks = append(stacks, stackFunctions(pd, p.Samples().At(i)))
				}
			}
		})
		want := []string{"do_syscall_64", "entry_SYSCALL_64_after_hwframe", "__write", "parseJSON<handleRequest", "main"}
		if !slices.ContainsFunc(stacks, func(s []string) bool { return slices.Equal(s, want) }) {
			t.Errorf("stacks of pid 4242 %q, want one %q", stacks, want)
		}
		d := pd.Dictionary()
		var kernel bool
		for i := range d.MappingTable().Len() {
			m := d.MappingTable().At(i)
			if d.StringTable().At(int(m.FilenameStrindex())) == profile.KernelMappingFile {
				kernel = attrsOf(d, m.AttributeIndices())["profile.frame.type"] == "kernel"
			}
		}
		if !kernel {
			t.Error("no kernel mapping marked profile.frame.type=kernel")
		}
	})
	t.Run("metrics arrive with their kinds, values and attributes", func(t *testing.T) {
		mds := col.WaitMetrics(t, hasPoints(len(readings.Points)))
		ms := metricsByName(mds...)
		cpu, ok := ms[profile.ContainerCPUTime]
		if !ok || cpu.Type() != pmetric.MetricTypeSum || !cpu.Sum().IsMonotonic() || cpu.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative {
			t.Fatalf("%s: %v, want a cumulative monotonic Sum", profile.ContainerCPUTime, cpu.Type())
		}
		dp := cpu.Sum().DataPoints().At(0)
		if dp.DoubleValue() != 12.5 || dp.StartTimestamp().AsTime() != testStart.Add(-time.Hour) {
			t.Errorf("%s = %v since %s, want 12.5 since %s", cpu.Name(), dp.DoubleValue(), dp.StartTimestamp().AsTime(), testStart.Add(-time.Hour))
		}
		if a := attrMap(dp.Attributes()); a["container.id"] != "c0ffee01" || a["k8s.pod.name"] != "web-0" {
			t.Errorf("%s attributes %v", cpu.Name(), a)
		}
		mem := ms[profile.ContainerMemoryUsage]
		if mem.Type() != pmetric.MetricTypeGauge || mem.Gauge().DataPoints().At(0).DoubleValue() != 64<<20 {
			t.Errorf("%s: %v, want a Gauge of 64 MiB", profile.ContainerMemoryUsage, mem.Type())
		}
		if lost := ms[profile.AgentLost]; lost.Sum().DataPoints().Len() != 2 {
			t.Errorf("%s has %d points, want 2", profile.AgentLost, lost.Sum().DataPoints().Len())
		}
		res := attrMap(mds[0].ResourceMetrics().At(0).Resource().Attributes())
		if res["k8s.node.name"] != "node-a" || res["k8s.cluster.name"] != "prod-eu" || res["host.name"] != "node-a" {
			t.Errorf("metrics resource %v", res)
		}
		if s := mds[0].ResourceMetrics().At(0).ScopeMetrics().At(0).Scope().Name(); s != ScopeName {
			t.Errorf("scope %q, want %q", s, ScopeName)
		}
	})
}

func TestACollectorStartedLateLosesNothing(t *testing.T) {
	col := testenv.NewOTelCollector(t) // not running yet: its port refuses connections
	logs := newLogWatch()
	cfg := Config{Endpoint: col.Endpoint(), Insecure: true, RetryBaseDelay: 20 * time.Millisecond, RetryMaxDelay: 200 * time.Millisecond, Logger: slog.New(logs)}
	p := newTestProfiles(t, cfg)
	m := newTestMetrics(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	ev := testEvent()
	readings := testMetrics()
	profilesDone, metricsDone := make(chan error, 1), make(chan error, 1)
	go func() { profilesDone <- p.Consume(ctx, ev) }()
	go func() { metricsDone <- m.Consume(ctx, readings) }()
	// Both consumers have seen Unavailable and wait to retry.
	for _, name := range []string{ProfilesName, MetricsName} {
		select {
		case <-logs.seen("export failed, retrying", name):
		case <-ctx.Done():
			t.Fatalf("%s did not retry", name)
		}
	}
	col.Start(t)

	if err := <-profilesDone; err != nil {
		t.Fatalf("profiles: %v", err)
	}
	if err := <-metricsDone; err != nil {
		t.Fatalf("metrics: %v", err)
	}
	if !logs.has("export succeeded after retries") {
		t.Error("no export needed a retry: the collector was up too early for this test")
	}
	pds := col.WaitProfiles(t, hasAllSamples(ev))
	count, cpu := eventTotals(ev)
	if got := totals(pds...); got["samples/count"] != count || got["cpu/nanoseconds"] != cpu {
		t.Errorf("collector wrote totals %v, want samples/count %d and cpu/nanoseconds %d (nothing lost, nothing twice)", got, count, cpu)
	}
	mds := col.WaitMetrics(t, hasPoints(len(readings.Points)))
	points := 0
	for _, md := range mds {
		points += md.DataPointCount()
	}
	if points != len(readings.Points) {
		t.Errorf("collector wrote %d points, want %d", points, len(readings.Points))
	}
}
