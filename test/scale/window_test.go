//go:build scale

package scale

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"k8s.io/client-go/rest"
)

// window is what happened while one phase of the benchmark ran.
type window struct {
	name     string
	duration time.Duration
	procs    map[string]usage // by process name
	kprof    managerStats
	peer     managerStats
	api      map[string]float64 // kube-apiserver requests, by "VERB resource[/subresource]"
	kprofLog int64              // bytes the operator logged
}

// managerStats is the change of a manager's metrics over a window (gauges: their end value).
type managerStats struct {
	reconciles  float64
	byResult    map[string]float64
	latency     histogram
	queueAdds   float64
	requests    map[string]float64 // client-go requests by method
	goroutines  float64
	heapInuse   float64
	checks      map[string]float64 // kprof_trigger_checks_total by result
	triggers    map[string]float64 // kprof_triggers_total by resource
	suppressed  map[string]float64 // kprof_trigger_suppressed_total by reason
	captures    map[string]float64 // kprof_captures_total by result
	failures    map[string]float64 // kprof_capture_failures_total by reason
	roundsSkip  float64
	triggerKprf histogram // kprof_trigger_latency_seconds{stage="kprof"}
}

// statsBetween is the change of the controller's metrics from a to b.
func statsBetween(a, b families, controller string) managerStats {
	sel := map[string]string{"controller": controller}
	q := map[string]string{"name": controller}
	delta := func(name, label string, want map[string]string) map[string]float64 {
		out := b.by(name, label, want)
		for k, v := range a.by(name, label, want) {
			out[k] -= v
		}
		return out
	}
	kprofStage := map[string]string{"stage": "kprof"}
	return managerStats{
		reconciles:  b.sum("controller_runtime_reconcile_total", sel) - a.sum("controller_runtime_reconcile_total", sel),
		byResult:    delta("controller_runtime_reconcile_total", "result", sel),
		latency:     b.histogram("controller_runtime_reconcile_time_seconds", sel).minus(a.histogram("controller_runtime_reconcile_time_seconds", sel)),
		queueAdds:   b.sum("workqueue_adds_total", q) - a.sum("workqueue_adds_total", q),
		requests:    delta("rest_client_requests_total", "method", nil),
		goroutines:  b.sum("go_goroutines", nil),
		heapInuse:   b.sum("go_memstats_heap_inuse_bytes", nil),
		checks:      delta("kprof_trigger_checks_total", "result", nil),
		triggers:    delta("kprof_triggers_total", "resource", nil),
		suppressed:  delta("kprof_trigger_suppressed_total", "reason", nil),
		captures:    delta("kprof_captures_total", "result", nil),
		failures:    delta("kprof_capture_failures_total", "reason", nil),
		roundsSkip:  b.sum("kprof_capture_rounds_skipped_total", nil) - a.sum("kprof_capture_rounds_skipped_total", nil),
		triggerKprf: b.histogram("kprof_trigger_latency_seconds", kprofStage).minus(a.histogram("kprof_trigger_latency_seconds", kprofStage)),
	}
}

// bench holds what every window measures.
type bench struct {
	procs     []watched
	kprof     *manager
	peer      *manager
	apiClient rest.Interface // kube-apiserver's /metrics
	last      *snapshot      // the end of the previous window: the next one starts there
}

// snapshot is the metrics of the managers and kube-apiserver at one moment.
type snapshot struct{ kprof, peer, api families }

func (b *bench) snapshot(t *testing.T) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var err error
	if s.kprof, err = scrape(ctx, b.kprof.metricsURL); err != nil {
		t.Fatalf("kprof operator: %v", err)
	}
	if s.peer, err = scrape(ctx, b.peer.metricsURL); err != nil {
		t.Fatalf("peer: %v", err)
	}
	raw, err := b.apiClient.Get().AbsPath("/metrics").Do(ctx).Raw()
	if err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	if s.api, err = parseText(bytes.NewReader(raw)); err != nil {
		t.Fatalf("kube-apiserver /metrics: %v", err)
	}
	return s
}

// measure runs a window: it samples the processes while wait runs (a fixed duration, or until
// a condition holds) and returns what changed.
func (b *bench) measure(t *testing.T, name string, wait func()) window {
	t.Helper()
	before := b.last
	if before == nil {
		s := b.snapshot(t)
		before = &s
	}
	t.Logf("window %s: measuring", name)
	logBefore := fileSize(b.kprof.logPath)
	began := time.Now()
	s := startSampling(b.procs)
	wait()
	procs := s.stop()
	w := window{name: name, duration: time.Since(began), procs: procs, kprofLog: fileSize(b.kprof.logPath) - logBefore}
	after := b.snapshot(t)
	b.last = &after
	w.kprof = statsBetween(before.kprof, after.kprof, "profilingconfig")
	w.peer = statsBetween(before.peer, after.peer, "peer")
	w.api = apiRequests(before.api, after.api)
	for _, m := range []*manager{b.kprof, b.peer} {
		if err := m.alive(); err != nil {
			t.Fatalf("%s window: %v\n%s", name, err, tailFile(m.logPath, 4<<10))
		}
	}
	return w
}

// sleepChecking sleeps for d, failing t early when a manager exits.
func (b *bench) sleepChecking(t *testing.T, d time.Duration) func() {
	return func() {
		end := time.Now().Add(d)
		for time.Now().Before(end) {
			for _, m := range []*manager{b.kprof, b.peer} {
				if err := m.alive(); err != nil {
					t.Fatalf("%v\n%s", err, tailFile(m.logPath, 4<<10))
				}
			}
			time.Sleep(min(time.Until(end), 5*time.Second))
		}
	}
}

// apiRequests is the change of apiserver_request_total from a to b by verb and resource.
func apiRequests(a, b families) map[string]float64 {
	key := func(m map[string]string) string {
		r := m["resource"]
		if m["group"] != "" {
			r += "." + m["group"]
		}
		if m["subresource"] != "" {
			r += "/" + m["subresource"]
		}
		return m["verb"] + " " + r
	}
	collect := func(f families) map[string]float64 {
		out := map[string]float64{}
		for _, m := range f["apiserver_request_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[key(labels)] += m.GetCounter().GetValue()
		}
		return out
	}
	out := collect(b)
	for k, v := range collect(a) {
		out[k] -= v
	}
	for k, v := range out {
		if v <= 0 {
			delete(out, k)
		}
	}
	return out
}

// top returns the n largest entries of m as "key n" strings, largest first.
func top(m map[string]float64, n int, per time.Duration) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if m[keys[i]] != m[keys[j]] {
			return m[keys[i]] > m[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var out []string
	for _, k := range keys[:min(n, len(keys))] {
		out = append(out, fmt.Sprintf("%-58s %7.0f  (%.1f/s)", k, m[k], m[k]/per.Seconds()))
	}
	return out
}
