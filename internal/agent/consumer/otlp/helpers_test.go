package otlp

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/profile"
)

var (
	testStart = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	testEnd   = testStart.Add(10 * time.Second)

	appMapping  = &profile.Mapping{Start: 0x400000, Limit: 0x800000, Offset: 0, File: "/app/server", BuildID: "8f3a1c2e9b7d6a5f4e3d2c1b0a998877"}
	libcMapping = &profile.Mapping{Start: 0x7f0000000000, Limit: 0x7f0000200000, Offset: 0x28000, File: "/usr/lib/x86_64-linux-gnu/libc.so.6", BuildID: "c2a1d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8091a2b"}
	goMapping   = &profile.Mapping{Start: 0x10000, Limit: 0x90000, File: "/bin/worker", BuildID: "abcDEF123/xyz789"}
)

// testEvent is a cpu-clock interval of three processes: a server in pod
// shop/web-0 (an inlined frame, libc and kernel frames, two threads, one
// stack seen in two samples of one thread), a worker in pod batch/job-1, and a
// host process without pod. Counts and CPU times follow a 10 ms period.
func testEvent() *profile.Event {
	const period = 10 * time.Millisecond
	kernel := []profile.Frame{
		{Address: 0xffffffff81000100, Kernel: true, Function: "do_syscall_64"},
		{Address: 0xffffffff81000200, Kernel: true, Function: "entry_SYSCALL_64_after_hwframe"},
	}
	serverLabels := map[string]string{
		"pid": "4242", "comm": "server", "exe": "/app/server", "container_id": "c0ffee0000000000000000000000000000000000000000000000000000000001",
		"pod": "web-0", "namespace": "shop", "container": "app", "pod_uid": "8a4f6d2e-0000-4000-8000-000000000001",
		// The pod's service identity, as the attributor sets it (serviceid.ForPod).
		"service": "web", "service_namespace": "shop", "service_instance_id": "shop.web-0.app", "service_version": "1.2",
	}
	serverStack := func(leaf ...profile.Frame) []profile.Frame {
		frames := append([]profile.Frame{}, leaf...)
		frames = append(frames,
			// parseJSON inlined into handleRequest: one address, two frames, innermost first.
			profile.Frame{Address: 0x401234, Function: "parseJSON", File: "/src/json.c", Line: 88, Mapping: appMapping},
			profile.Frame{Address: 0x401234, Function: "handleRequest", File: "/src/server.c", Line: 120, Mapping: appMapping},
			profile.Frame{Address: 0x400800, Function: "main", File: "/src/server.c", Line: 10, Mapping: appMapping},
		)
		return frames
	}
	sample := func(pid, tid int32, count uint64, labels map[string]string, frames []profile.Frame) profile.Sample {
		return profile.Sample{PID: pid, TID: tid, Count: count, CPUTime: time.Duration(count) * period, Labels: labels, Frames: frames}
	}
	withKernel := func(user []profile.Frame) []profile.Frame {
		return append(append([]profile.Frame{}, kernel...), user...)
	}
	workerLabels := map[string]string{
		"pid": "777", "comm": "worker", "exe": "/bin/worker", "container_id": "c0ffee0000000000000000000000000000000000000000000000000000000002",
		"pod": "job-1", "namespace": "batch", "container": "worker", "pod_uid": "8a4f6d2e-0000-4000-8000-000000000002",
	}
	// comm is cut at 15 characters; the executable's name is whole.
	hostLabels := map[string]string{"pid": "1", "comm": "systemd-journal", "exe": "/usr/lib/systemd/systemd-journald"}
	return &profile.Event{
		Config: "default", Version: 3, EventName: "cpu-clock",
		Period: uint64(period), Start: testStart, End: testEnd,
		Labels: map[string]string{"node": "node-a", "cluster": "prod-eu"},
		Samples: []profile.Sample{
			sample(4242, 4242, 30, serverLabels, serverStack()),
			sample(4242, 4243, 12, serverLabels, withKernel(serverStack(
				profile.Frame{Address: 0x7f0000012345, Function: "__write", File: "", Mapping: libcMapping}))),
			// The same stack and thread again: combined with the sample above.
			sample(4242, 4243, 3, serverLabels, withKernel(serverStack(
				profile.Frame{Address: 0x7f0000012345, Function: "__write", File: "", Mapping: libcMapping}))),
			sample(777, 780, 20, workerLabels, []profile.Frame{
				{Address: 0x12345, Function: "main.crunch", File: "/src/worker/main.go", Line: 42, Mapping: goMapping},
				{Address: 0x7f0000012345, Function: "__write", Mapping: libcMapping},
				{Address: 0x99999}, // unmapped and unknown
			}),
			sample(1, 1, 5, hostLabels, withKernel(nil)),
		},
	}
}

func testMetrics() *profile.Metrics {
	started := testStart.Add(-time.Hour)
	return &profile.Metrics{
		Time:   testEnd,
		Labels: map[string]string{"node": "node-a", "cluster": "prod-eu"},
		Points: []profile.Point{
			{Name: profile.ContainerCPUTime, Kind: profile.Counter, Unit: "s", Value: 12.5, Start: started, Labels: map[string]string{
				"container_id": "c0ffee01", "pod_uid": "uid-1", "pod": "web-0", "namespace": "shop", "container": "app"}},
			{Name: profile.ContainerMemoryUsage, Kind: profile.Gauge, Unit: "By", Value: 64 << 20, Labels: map[string]string{
				"container_id": "c0ffee01", "pod_uid": "uid-1", "pod": "web-0", "namespace": "shop", "container": "app"}},
			{Name: profile.PodCPUTime, Kind: profile.Counter, Unit: "s", Value: 13, Start: started, Labels: map[string]string{"pod_uid": "uid-1", "pod": "web-0", "namespace": "shop"}},
			{Name: profile.AgentSamples, Kind: profile.Counter, Unit: "{sample}", Value: 70, Start: started},
			{Name: profile.AgentLost, Kind: profile.Counter, Unit: "{sample}", Value: 2, Start: started, Labels: map[string]string{"reason": "map_full", "config": "steady"}},
			{Name: profile.AgentLost, Kind: profile.Counter, Unit: "{sample}", Value: 1, Start: started, Labels: map[string]string{"reason": "map_full", "config": "spiky"}},
		},
	}
}

// totals sums the values of every sample per sample type ("cpu/nanoseconds").
func totals(pds ...pprofile.Profiles) map[string]int64 {
	out := map[string]int64{}
	for _, pd := range pds {
		strs := pd.Dictionary().StringTable()
		eachProfile(pd, func(_ pprofile.ResourceProfiles, p pprofile.Profile) {
			typ := strs.At(int(p.SampleType().TypeStrindex())) + "/" + strs.At(int(p.SampleType().UnitStrindex()))
			for i := range p.Samples().Len() {
				v := p.Samples().At(i).Values()
				for j := range v.Len() {
					out[typ] += v.At(j)
				}
			}
		})
	}
	return out
}

func eachProfile(pd pprofile.Profiles, fn func(pprofile.ResourceProfiles, pprofile.Profile)) {
	for i := range pd.ResourceProfiles().Len() {
		rp := pd.ResourceProfiles().At(i)
		for j := range rp.ScopeProfiles().Len() {
			ps := rp.ScopeProfiles().At(j).Profiles()
			for k := range ps.Len() {
				fn(rp, ps.At(k))
			}
		}
	}
}

// resourceByPID returns the resource of process pid.
func resourceByPID(t *testing.T, pds []pprofile.Profiles, pid int64) (pprofile.Profiles, pprofile.ResourceProfiles) {
	t.Helper()
	for _, pd := range pds {
		for i := range pd.ResourceProfiles().Len() {
			rp := pd.ResourceProfiles().At(i)
			if v, ok := rp.Resource().Attributes().Get(attrProcessPID); ok && v.Int() == pid {
				return pd, rp
			}
		}
	}
	t.Fatalf("no resource with process.pid %d", pid)
	return pprofile.Profiles{}, pprofile.ResourceProfiles{}
}

// stackFunctions returns a sample's stack as one string per location, leaf
// first: its lines' function names joined by "<" (innermost first), or
// "0x<addr>" when it has no lines.
func stackFunctions(pd pprofile.Profiles, s pprofile.Sample) []string {
	d := pd.Dictionary()
	st := d.StackTable().At(int(s.StackIndex()))
	var out []string
	for i := range st.LocationIndices().Len() {
		loc := d.LocationTable().At(int(st.LocationIndices().At(i)))
		if loc.Lines().Len() == 0 {
			out = append(out, fmt.Sprintf("0x%x", loc.Address()))
			continue
		}
		var names []string
		for j := range loc.Lines().Len() {
			fn := d.FunctionTable().At(int(loc.Lines().At(j).FunctionIndex()))
			names = append(names, d.StringTable().At(int(fn.NameStrindex())))
		}
		out = append(out, strings.Join(names, "<"))
	}
	return out
}

// attrsOf resolves attribute indices into a map of string values.
func attrsOf(d pprofile.ProfilesDictionary, idx pcommon.Int32Slice) map[string]string {
	out := map[string]string{}
	for i := range idx.Len() {
		a := d.AttributeTable().At(int(idx.At(i)))
		out[d.StringTable().At(int(a.KeyStrindex()))] = a.Value().AsString()
	}
	return out
}

// attrMap returns a pcommon.Map's values as strings.
func attrMap(m pcommon.Map) map[string]string {
	out := map[string]string{}
	for k, v := range m.All() {
		out[k] = v.AsString()
	}
	return out
}

// metricsByName indexes the metrics of mds by name.
func metricsByName(mds ...pmetric.Metrics) map[string]pmetric.Metric {
	out := map[string]pmetric.Metric{}
	for _, md := range mds {
		for i := range md.ResourceMetrics().Len() {
			sms := md.ResourceMetrics().At(i).ScopeMetrics()
			for j := range sms.Len() {
				ms := sms.At(j).Metrics()
				for k := range ms.Len() {
					out[ms.At(k).Name()] = ms.At(k)
				}
			}
		}
	}
	return out
}

// logWatch is a slog handler that keeps each record's message and component
// and signals the records a test waits for.
type logWatch struct {
	*logState
	component string
}

type logState struct {
	mu      sync.Mutex
	waiters map[string]chan struct{} // by watchKey
	seenKey map[string]bool
}

func newLogWatch() *logWatch {
	return &logWatch{logState: &logState{waiters: map[string]chan struct{}{}, seenKey: map[string]bool{}}}
}

func watchKey(msg, component string) string { return msg + "\x00" + component }

// seen returns a channel closed once a record with message msg is logged by
// component (any component when "").
func (w *logWatch) seen(msg, component string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := watchKey(msg, component)
	ch, ok := w.waiters[k]
	if !ok {
		ch = make(chan struct{})
		w.waiters[k] = ch
		if w.seenKey[k] {
			close(ch)
		}
	}
	return ch
}

// has reports whether a record with message msg was logged.
func (w *logWatch) has(msg string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.seenKey[watchKey(msg, "")]
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }
func (w *logWatch) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *w
	for _, a := range attrs {
		if a.Key == "component" {
			c.component = a.Value.String()
		}
	}
	return &c
}

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, k := range []string{watchKey(r.Message, ""), watchKey(r.Message, w.component)} {
		if w.seenKey[k] {
			continue
		}
		w.seenKey[k] = true
		if ch, ok := w.waiters[k]; ok {
			close(ch)
		}
	}
	return nil
}
