package otlp

import (
	"maps"
	"slices"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/profile"
)

func TestConvertKeepsEverySampleValue(t *testing.T) {
	ev := testEvent()
	pd, err := Convert(ev)
	if err != nil {
		t.Fatal(err)
	}
	var count uint64
	var cpu time.Duration
	for _, s := range ev.Samples {
		count += s.Count
		cpu += s.CPUTime
	}
	got := totals(pd)
	if got["samples/count"] != int64(count) || got["cpu/nanoseconds"] != int64(cpu) {
		t.Errorf("totals %v, want samples/count %d and cpu/nanoseconds %d", got, count, cpu)
	}
	// 5 samples, two of which share stack and thread: 4 OTLP samples per profile type.
	if n := pd.SampleCount(); n != 2*4 {
		t.Errorf("%d samples in all, want 8 (4 per profile type)", n)
	}
}

func TestConvertMakesOneResourcePerProcessWithItsAttributes(t *testing.T) {
	pd, err := Convert(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	if n := pd.ResourceProfiles().Len(); n != 3 {
		t.Fatalf("%d resources, want 3 (one per process)", n)
	}
	node := map[string]string{"k8s.node.name": "node-a", "host.name": "node-a", "k8s.cluster.name": "prod-eu"}
	tests := []struct {
		name string
		pid  int64
		want map[string]string
	}{
		{"a pod's process has the pod, container and process attributes", 4242, map[string]string{
			"process.pid": "4242", "process.executable.name": "server", "process.executable.path": "/app/server",
			"container.id": "c0ffee0000000000000000000000000000000000000000000000000000000001",
			"k8s.pod.name": "web-0", "k8s.namespace.name": "shop", "k8s.container.name": "app", "k8s.pod.uid": "8a4f6d2e-0000-4000-8000-000000000001",
			"service.name": "web", "service.namespace": "shop", "service.instance.id": "shop.web-0.app", "service.version": "1.2",
		}},
		{"another pod's process (pod identity unknown) is named by its executable", 777, map[string]string{
			"process.pid": "777", "process.executable.name": "worker", "process.executable.path": "/bin/worker",
			"container.id": "c0ffee0000000000000000000000000000000000000000000000000000000002",
			"k8s.pod.name": "job-1", "k8s.namespace.name": "batch", "k8s.container.name": "worker", "k8s.pod.uid": "8a4f6d2e-0000-4000-8000-000000000002",
			"service.name": "worker",
		}},
		{"a host process has no pod attributes and is named by its whole executable name, not its comm", 1, map[string]string{
			"process.pid": "1", "process.executable.name": "systemd-journald", "process.executable.path": "/usr/lib/systemd/systemd-journald",
			"service.name": "systemd-journald",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, rp := resourceByPID(t, []pprofile.Profiles{pd}, tt.pid)
			want := maps.Clone(tt.want)
			maps.Copy(want, node)
			if got := attrMap(rp.Resource().Attributes()); !maps.Equal(got, want) {
				t.Errorf("resource attributes\n got %v\nwant %v", got, want)
			}
			if v, _ := rp.Resource().Attributes().Get("process.pid"); v.Type() != pcommon.ValueTypeInt {
				t.Errorf("process.pid is a %s, want an int", v.Type())
			}
			sp := rp.ScopeProfiles().At(0)
			if sp.Scope().Name() != ScopeName {
				t.Errorf("scope %q, want %q", sp.Scope().Name(), ScopeName)
			}
		})
	}
}

func TestConvertDescribesEachProfile(t *testing.T) {
	ev := testEvent()
	pd, err := Convert(ev)
	if err != nil {
		t.Fatal(err)
	}
	strs := pd.Dictionary().StringTable()
	_, rp := resourceByPID(t, []pprofile.Profiles{pd}, 4242)
	ps := rp.ScopeProfiles().At(0).Profiles()
	if ps.Len() != 2 {
		t.Fatalf("%d profiles, want cpu and samples", ps.Len())
	}
	for i, want := range []string{"cpu/nanoseconds", "samples/count"} {
		p := ps.At(i)
		if got := strs.At(int(p.SampleType().TypeStrindex())) + "/" + strs.At(int(p.SampleType().UnitStrindex())); got != want {
			t.Errorf("profile %d sample type %s, want %s", i, got, want)
		}
		if got := strs.At(int(p.PeriodType().TypeStrindex())) + "/" + strs.At(int(p.PeriodType().UnitStrindex())); got != "cpu/nanoseconds" {
			t.Errorf("profile %d period type %s, want cpu/nanoseconds", i, got)
		}
		if p.Period() != int64(10*time.Millisecond) {
			t.Errorf("profile %d period %d, want 10ms", i, p.Period())
		}
		if p.Time().AsTime() != testStart || p.DurationNano() != uint64(10*time.Second) {
			t.Errorf("profile %d time %s duration %d, want %s and 10s", i, p.Time().AsTime(), p.DurationNano(), testStart)
		}
		if p.ProfileID().IsEmpty() {
			t.Errorf("profile %d has no ID", i)
		}
		want := map[string]string{"kprof.config": "default", "kprof.config.version": "3", "kprof.event": "cpu-clock"}
		if got := attrsOf(pd.Dictionary(), p.AttributeIndices()); !maps.Equal(got, want) {
			t.Errorf("profile %d attributes %v, want %v", i, got, want)
		}
	}
}

func TestConvertKeepsInlineAndKernelFrames(t *testing.T) {
	pd, err := Convert(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	d := pd.Dictionary()
	_, rp := resourceByPID(t, []pprofile.Profiles{pd}, 4242)
	cpu := rp.ScopeProfiles().At(0).Profiles().At(0)

	var sawKernel bool
	for i := range cpu.Samples().Len() {
		s := cpu.Samples().At(i)
		got := stackFunctions(pd, s)
		tid := attrsOf(d, s.AttributeIndices())["thread.id"]
		switch tid {
		case "4242":
			want := []string{"parseJSON<handleRequest", "main"}
			if !slices.Equal(got, want) || s.Values().At(0) != int64(300*time.Millisecond) {
				t.Errorf("thread 4242: stack %q value %d, want %q and 300ms", got, s.Values().At(0), want)
			}
		case "4243":
			sawKernel = true
			want := []string{"do_syscall_64", "entry_SYSCALL_64_after_hwframe", "__write", "parseJSON<handleRequest", "main"}
			if !slices.Equal(got, want) || s.Values().At(0) != int64(150*time.Millisecond) {
				t.Errorf("thread 4243: stack %q value %d, want %q and 150ms (two samples combined)", got, s.Values().At(0), want)
			}
			st := d.StackTable().At(int(s.StackIndex()))
			for j := range 2 {
				loc := d.LocationTable().At(int(st.LocationIndices().At(j)))
				m := d.MappingTable().At(int(loc.MappingIndex()))
				if f := d.StringTable().At(int(m.FilenameStrindex())); f != profile.KernelMappingFile {
					t.Errorf("kernel frame %d in mapping %q, want %q", j, f, profile.KernelMappingFile)
				}
				if a := attrsOf(d, loc.AttributeIndices()); a["profile.frame.type"] != "kernel" {
					t.Errorf("kernel frame %d attributes %v, want profile.frame.type=kernel", j, a)
				}
			}
			inl := d.LocationTable().At(int(st.LocationIndices().At(3)))
			if inl.Lines().Len() != 2 || inl.Lines().At(0).Line() != 88 || inl.Lines().At(1).Line() != 120 || inl.Address() != 0x401234 {
				t.Errorf("inline location: address %#x, %d lines, want 0x401234 with lines 88 (parseJSON) then 120 (handleRequest)", inl.Address(), inl.Lines().Len())
			}
			fn := d.FunctionTable().At(int(inl.Lines().At(0).FunctionIndex()))
			if f := d.StringTable().At(int(fn.FilenameStrindex())); f != "/src/json.c" {
				t.Errorf("parseJSON file %q, want /src/json.c", f)
			}
			m := d.MappingTable().At(int(inl.MappingIndex()))
			if m.MemoryStart() != 0x400000 || m.MemoryLimit() != 0x800000 || d.StringTable().At(int(m.FilenameStrindex())) != "/app/server" {
				t.Errorf("app mapping %#x-%#x %q, want 0x400000-0x800000 /app/server", m.MemoryStart(), m.MemoryLimit(), d.StringTable().At(int(m.FilenameStrindex())))
			}
			if a := attrsOf(d, m.AttributeIndices()); a["process.executable.build_id.gnu"] != appMapping.BuildID {
				t.Errorf("app mapping attributes %v, want the GNU build ID", a)
			}
		default:
			t.Errorf("sample of unexpected thread %q", tid)
		}
	}
	if !sawKernel {
		t.Error("no sample of thread 4243 (the one with kernel frames)")
	}

	_, worker := resourceByPID(t, []pprofile.Profiles{pd}, 777)
	ws := worker.ScopeProfiles().At(0).Profiles().At(0).Samples().At(0)
	if got, want := stackFunctions(pd, ws), []string{"main.crunch", "__write", "0x99999"}; !slices.Equal(got, want) {
		t.Errorf("worker stack %q, want %q", got, want)
	}
	loc := d.LocationTable().At(int(d.StackTable().At(int(ws.StackIndex())).LocationIndices().At(0)))
	if a := attrsOf(d, d.MappingTable().At(int(loc.MappingIndex())).AttributeIndices()); a["process.executable.build_id.go"] != goMapping.BuildID {
		t.Errorf("Go mapping attributes %v, want the Go build ID", a)
	}
	unknown := d.LocationTable().At(int(d.StackTable().At(int(ws.StackIndex())).LocationIndices().At(2)))
	if unknown.MappingIndex() != 0 || unknown.Lines().Len() != 0 {
		t.Errorf("unmapped unknown frame: mapping %d, %d lines; want 0 and none", unknown.MappingIndex(), unknown.Lines().Len())
	}
}

func TestConvertDeduplicatesTheDictionary(t *testing.T) {
	pd, err := Convert(testEvent())
	if err != nil {
		t.Fatal(err)
	}
	d := pd.Dictionary()
	strs := d.StringTable().AsRaw()
	if strs[0] != "" {
		t.Errorf("string_table[0] = %q, want \"\"", strs[0])
	}
	seen := map[string]bool{}
	for _, s := range strs {
		if seen[s] {
			t.Errorf("string %q appears twice", s)
		}
		seen[s] = true
	}
	// main, parseJSON, handleRequest, __write, do_syscall_64, entry_SYSCALL_64_after_hwframe, main.crunch.
	if n := d.FunctionTable().Len() - 1; n != 7 {
		t.Errorf("%d functions, want 7", n)
	}
	// app, libc (shared by two processes), Go worker, kernel.
	if n := d.MappingTable().Len() - 1; n != 4 {
		t.Errorf("%d mappings, want 4", n)
	}
	// parseJSON/handleRequest, main, __write, 2 kernel, main.crunch, 0x99999.
	if n := d.LocationTable().Len() - 1; n != 7 {
		t.Errorf("%d locations, want 7", n)
	}
	for _, table := range []struct {
		name string
		n    int
		zero bool
	}{
		{"mapping", d.MappingTable().Len(), d.MappingTable().At(0).Equal(pprofile.NewMapping())},
		{"location", d.LocationTable().Len(), d.LocationTable().At(0).Equal(pprofile.NewLocation())},
		{"function", d.FunctionTable().Len(), d.FunctionTable().At(0).Equal(pprofile.NewFunction())},
		{"stack", d.StackTable().Len(), d.StackTable().At(0).Equal(pprofile.NewStack())},
		{"link", d.LinkTable().Len(), d.LinkTable().At(0).Equal(pprofile.NewLink())},
		{"attribute", d.AttributeTable().Len(), d.AttributeTable().At(0).Equal(pprofile.NewKeyValueAndUnit())},
	} {
		if table.n == 0 || !table.zero {
			t.Errorf("%s_table[0] is not the zero value", table.name)
		}
	}
}

func TestConvertOfACountingEventHasOnlySampleCounts(t *testing.T) {
	ev := &profile.Event{EventName: "page-faults", Period: 1000, Start: testStart, End: testEnd,
		Samples: []profile.Sample{{PID: 9, TID: 9, Count: 7, Frames: []profile.Frame{{Address: 1, Function: "f"}}}}}
	pd, err := Convert(ev)
	if err != nil {
		t.Fatal(err)
	}
	ps := pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles()
	if ps.Len() != 1 {
		t.Fatalf("%d profiles, want only samples/count", ps.Len())
	}
	strs := pd.Dictionary().StringTable()
	p := ps.At(0)
	if got := strs.At(int(p.PeriodType().TypeStrindex())) + "/" + strs.At(int(p.PeriodType().UnitStrindex())); got != "page-faults/count" || p.Period() != 1000 {
		t.Errorf("period %d of %s, want 1000 page-faults/count", p.Period(), got)
	}
	if got := totals(pd); got["samples/count"] != 7 || len(got) != 1 {
		t.Errorf("totals %v, want samples/count 7 only", got)
	}
}

func TestConvertDerivesThePeriodFromTheFrequency(t *testing.T) {
	ev := &profile.Event{EventName: "cpu-clock", Frequency: 99,
		Samples: []profile.Sample{{PID: 9, Count: 1, CPUTime: time.Second / 99}}}
	pd, err := Convert(ev)
	if err != nil {
		t.Fatal(err)
	}
	p := pd.ResourceProfiles().At(0).ScopeProfiles().At(0).Profiles().At(0)
	if p.Period() != int64(time.Second/99) {
		t.Errorf("period %d, want %d", p.Period(), time.Second/99)
	}
	if p.Time() != 0 || p.DurationNano() != 0 {
		t.Errorf("time %d duration %d, want both unset for an event without Start", p.Time(), p.DurationNano())
	}
}

func TestConvertOfNothing(t *testing.T) {
	if _, err := Convert(nil); err == nil {
		t.Error("Convert(nil) succeeded")
	}
	pd, err := Convert(&profile.Event{})
	if err != nil || pd.ResourceProfiles().Len() != 0 {
		t.Errorf("Convert(empty) = %d resources, %v; want none", pd.ResourceProfiles().Len(), err)
	}
}

func TestConvertMetrics(t *testing.T) {
	md := ConvertMetrics(testMetrics())
	if md.ResourceMetrics().Len() != 1 {
		t.Fatalf("%d resources, want 1", md.ResourceMetrics().Len())
	}
	rm := md.ResourceMetrics().At(0)
	if got, want := attrMap(rm.Resource().Attributes()), map[string]string{"k8s.node.name": "node-a", "host.name": "node-a", "k8s.cluster.name": "prod-eu"}; !maps.Equal(got, want) {
		t.Errorf("resource attributes %v, want %v", got, want)
	}
	if s := rm.ScopeMetrics().At(0).Scope().Name(); s != ScopeName {
		t.Errorf("scope %q, want %q", s, ScopeName)
	}
	ms := metricsByName(md)
	if len(ms) != 5 || md.DataPointCount() != 6 {
		t.Fatalf("%d metrics with %d points, want 5 with 6", len(ms), md.DataPointCount())
	}
	started := pcommon.NewTimestampFromTime(testStart.Add(-time.Hour))
	ts := pcommon.NewTimestampFromTime(testEnd)

	cpu := ms[profile.ContainerCPUTime]
	if cpu.Type() != pmetric.MetricTypeSum || !cpu.Sum().IsMonotonic() || cpu.Sum().AggregationTemporality() != pmetric.AggregationTemporalityCumulative || cpu.Unit() != "s" {
		t.Fatalf("%s: %s monotonic=%v %s unit %q, want a cumulative monotonic Sum in s", cpu.Name(), cpu.Type(), cpu.Sum().IsMonotonic(), cpu.Sum().AggregationTemporality(), cpu.Unit())
	}
	dp := cpu.Sum().DataPoints().At(0)
	if dp.DoubleValue() != 12.5 || dp.StartTimestamp() != started || dp.Timestamp() != ts {
		t.Errorf("%s point: %v from %s at %s, want 12.5 from %s at %s", cpu.Name(), dp.DoubleValue(), dp.StartTimestamp(), dp.Timestamp(), started, ts)
	}
	want := map[string]string{"container.id": "c0ffee01", "k8s.pod.uid": "uid-1", "k8s.pod.name": "web-0", "k8s.namespace.name": "shop", "k8s.container.name": "app"}
	if got := attrMap(dp.Attributes()); !maps.Equal(got, want) {
		t.Errorf("%s attributes %v, want %v", cpu.Name(), got, want)
	}

	mem := ms[profile.ContainerMemoryUsage]
	if mem.Type() != pmetric.MetricTypeGauge || mem.Gauge().DataPoints().At(0).DoubleValue() != 64<<20 || mem.Unit() != "By" {
		t.Errorf("%s: %s, want a Gauge of 64 MiB in By", mem.Name(), mem.Type())
	}
	if mem.Gauge().DataPoints().At(0).StartTimestamp() != 0 {
		t.Errorf("%s has a start time", mem.Name())
	}

	lost := ms[profile.AgentLost]
	if lost.Sum().DataPoints().Len() != 2 {
		t.Fatalf("%s has %d points, want one per reason", lost.Name(), lost.Sum().DataPoints().Len())
	}
	if r, _ := lost.Sum().DataPoints().At(1).Attributes().Get("reason"); r.Str() != "map_full" {
		t.Errorf("%s second point reason %q, want map_full", lost.Name(), r.Str())
	}
}

func TestTheConsumersConversionLeavesThreadIDsOutAndPutsTheConfigOnTheScope(t *testing.T) {
	ev := testEvent()
	for _, tt := range []struct {
		name      string
		threadIDs bool
	}{
		{"by default no sample has a thread.id", false},
		{"with ThreadIDs every sample has one", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			pd := convertGroups(ev, groupByProcess(ev), convertOptions{threadIDs: tt.threadIDs})
			d := pd.Dictionary()
			withTID, samples := 0, 0
			for _, rp := range pd.ResourceProfiles().All() {
				sp := rp.ScopeProfiles().At(0)
				if got := attrMap(sp.Scope().Attributes())["kprof_config"]; got != ev.Config {
					t.Errorf("scope kprof_config = %q, want %q (Pyroscope labels series by scope attributes)", got, ev.Config)
				}
				for _, p := range sp.Profiles().All() {
					for _, s := range p.Samples().All() {
						samples++
						if _, ok := attrsOf(d, s.AttributeIndices())["thread.id"]; ok {
							withTID++
						}
					}
				}
			}
			if want := map[bool]int{false: 0, true: samples}[tt.threadIDs]; withTID != want || samples == 0 {
				t.Errorf("%d of %d samples have a thread.id, want %d", withTID, samples, want)
			}
		})
	}
}
