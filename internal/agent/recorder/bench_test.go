package recorder

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// BenchmarkConsumeANodeOf110Pods feeds the recorder one 1 s interval per
// operation of a node of 110 pods, each with 4 stacks of 30 frames (new pids
// every 60 s, as pods restart), and reports the bytes it holds once its 30 s
// window is full. ns/op is the recorder's CPU per collection interval.
func BenchmarkConsumeANodeOf110Pods(b *testing.B) {
	const pods, stacksPerPod, depth = 110, 4, 30
	frames := func(pod, stack int) []profile.Frame {
		fs := make([]profile.Frame, depth)
		for i := range fs {
			fs[i] = profile.Frame{Address: uint64(0x400000 + 0x40*(i+stack*depth)), Function: fmt.Sprintf("main.fn%d_%d", stack, i),
				File: "/src/app/main.go", Line: 10 + i, Mapping: binMapping}
		}
		return fs
	}
	events := make([]*profile.Event, 60)
	for sec := range events {
		var samples []profile.Sample
		for p := range pods {
			for st := range stacksPerPod {
				pid := int32(1000 + p*100 + sec/60)
				samples = append(samples, sample("ns", fmt.Sprintf("app-%03d", p), pid, pid, 1, frames(p, st)))
			}
		}
		events[sec] = event("cpu", t0, time.Second, samples...)
	}
	r, c, reg := testRecorder(b, Config{})
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ev := *events[i%len(events)]
		ev.Start = t0.Add(time.Duration(i) * time.Second)
		ev.End = ev.Start.Add(time.Second)
		c.set(ev.End)
		if err := r.Consume(b.Context(), &ev); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if b.N >= 30 {
		b.ReportMetric(gauge(b, reg, "kprof_agent_recorder_bytes"), "held-bytes")
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		runtime.KeepAlive(events)
		runtime.KeepAlive(r)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "heap-bytes")
	}
}
