package recorder

import (
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/kprof/kprof/internal/agent/profile"
)

// t0 is the start of every test's first interval.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// clock is a manual clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// testRecorder returns a recorder on a manual clock (at t0) with its own registry.
func testRecorder(t testing.TB, cfg Config) (*Recorder, *clock, *prometheus.Registry) {
	t.Helper()
	c := &clock{now: t0}
	reg := prometheus.NewRegistry()
	cfg.Now, cfg.Registry = c.Now, reg
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, c, reg
}

var binMapping = &profile.Mapping{Start: 0x400000, Limit: 0x800000, File: "/app/server", BuildID: "abcd"}

// stackOf returns frames leaf first: a kernel frame, then the user functions.
func stackOf(fns ...string) []profile.Frame {
	frames := []profile.Frame{{Address: 0xffffffff81000010, Kernel: true, Function: "do_syscall_64"}}
	for i, fn := range fns {
		frames = append(frames, profile.Frame{Address: 0x401000 + uint64(i)*0x10 + uint64(len(fn))*0x100, Function: fn, File: "main.go", Line: 10 + i, Mapping: binMapping})
	}
	return frames
}

// sample is count samples of a 10 ms period in a pod's process.
func sample(ns, pod string, pid, tid int32, count uint64, frames []profile.Frame) profile.Sample {
	labels := map[string]string{"pid": "1", "comm": "server", "exe": "/app/server", "container_id": "c0ffee", "pod_uid": "u1", "container": "app"}
	if pod != "" {
		labels["namespace"], labels["pod"] = ns, pod
	}
	return profile.Sample{PID: pid, TID: tid, Frames: frames, Count: count, CPUTime: time.Duration(count) * 10 * time.Millisecond, Labels: labels}
}

// event is one interval [start, start+d) of config "cpu" with the samples.
func event(config string, start time.Time, d time.Duration, samples ...profile.Sample) *profile.Event {
	return &profile.Event{
		Config: config, Version: 1, EventName: "cpu-clock", Frequency: 100,
		Start: start, End: start.Add(d),
		Labels:  map[string]string{"node": "node-a", "cluster": "prod"},
		Samples: samples,
	}
}

// feed consumes one event per second from t0 for n seconds, with the samples
// given per second, and advances the clock to each event's end.
func feed(t *testing.T, r *Recorder, c *clock, from, n int, samples func(sec int) []profile.Sample) {
	t.Helper()
	for sec := from; sec < from+n; sec++ {
		start := t0.Add(time.Duration(sec) * time.Second)
		c.set(start.Add(time.Second))
		if err := r.Consume(t.Context(), event("cpu", start, time.Second, samples(sec)...)); err != nil {
			t.Fatal(err)
		}
	}
}

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

func total(ev *profile.Event) (count uint64) {
	for _, s := range ev.Samples {
		count += s.Count
	}
	return count
}

func gauge(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				return m.GetCounter().GetValue()
			default:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
