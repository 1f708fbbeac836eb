//go:build linux

package agent

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

// metricsCapture is a metrics consumer that keeps every reading.
type metricsCapture struct {
	mu       sync.Mutex
	readings []*profile.Metrics
	shutdown bool
}

func (m *metricsCapture) Name() string { return "metrics-capture" }

func (m *metricsCapture) Consume(_ context.Context, r *profile.Metrics) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.readings = append(m.readings, r)
	return nil
}

func (m *metricsCapture) Shutdown(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shutdown = true
	return nil
}

func (m *metricsCapture) last() *profile.Metrics {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.readings) == 0 {
		return nil
	}
	return m.readings[len(m.readings)-1]
}

// waitReading polls until a reading satisfies ok.
func (m *metricsCapture) waitReading(t *testing.T, what string, ok func(*profile.Metrics) bool) *profile.Metrics {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute) // a collector's first interval, on a loaded machine
	for time.Now().Before(deadline) {
		if r := m.last(); r != nil && ok(r) {
			return r
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no reading %s; last: %+v", what, m.last())
	return nil
}

func point(r *profile.Metrics, name string, labels map[string]string) (profile.Point, bool) {
	for _, p := range r.Points {
		if p.Name != name {
			continue
		}
		match := true
		for k, v := range labels {
			if p.Labels[k] != v {
				match = false
			}
		}
		if match {
			return p, true
		}
	}
	return profile.Point{}, false
}

// With a metrics consumer, the agent reads container usage from the cgroup
// tree every interval and sends it, with the agent's own counters (samples
// of a real collector, each consumer's deliveries), through the metrics
// router; shutdown sends a last reading.
func TestAgentRoutesUsageAndCounters(t *testing.T) {
	requireBPF(t)
	startBurner(t)
	const (
		uid = "7d5c1a1e-1111-4222-8333-944455556666"
		cid = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	)
	cg := t.TempDir()
	container := filepath.Join(cg, "kubepods.slice", "kubepods-pod"+"7d5c1a1e_1111_4222_8333_944455556666"+".slice", "cri-containerd-"+cid+".scope")
	writeFile(t, filepath.Join(cg, "cgroup.controllers"), "cpu memory\n")
	setUsage := func(usec int) {
		writeFile(t, filepath.Join(container, "cpu.stat"), "usage_usec "+strconv.Itoa(usec)+"\nuser_usec 0\nsystem_usec 0\n")
		writeFile(t, filepath.Join(container, "memory.current"), "4194304\n")
	}
	if err := os.MkdirAll(container, 0o755); err != nil {
		t.Fatal(err)
	}
	setUsage(1_500_000)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.yaml"), plainConfig("cpu", 1, "cpu-clock"))
	profiles := newCaptureConsumer()
	mc := &metricsCapture{}
	a, err := New(Config{
		ConfigDir: dir, NoCluster: true, MetricsAddr: "0", HealthAddr: "0", NodeName: "node-a", ClusterName: "prod",
		Consumers:        []router.Consumer{profiles},
		MetricsConsumers: []router.MetricsConsumer{mc},
		CgroupRoot:       cg, UsageInterval: 100 * time.Millisecond,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry: prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{"container_id": cid, "pod_uid": uid}
	r := mc.waitReading(t, "with the container's CPU time", func(r *profile.Metrics) bool {
		_, ok := point(r, profile.ContainerCPUTime, ids)
		return ok
	})
	if r.Labels["node"] != "node-a" || r.Labels["cluster"] != "prod" {
		t.Errorf("reading labels %v, want node-a/prod", r.Labels)
	}
	if p, _ := point(r, profile.ContainerCPUTime, ids); p.Value != 1.5 || p.Kind != profile.Counter || p.Unit != "s" {
		t.Errorf("container.cpu.time %+v, want a 1.5 s counter", p)
	}
	if p, ok := point(r, profile.ContainerMemoryUsage, ids); !ok || p.Value != 4<<20 || p.Kind != profile.Gauge || p.Unit != "By" {
		t.Errorf("container.memory.usage %+v (found %v), want a 4 MiB gauge", p, ok)
	}

	// The file changes; the next readings follow. The collector's first
	// interval (1 s) shows up in the counters.
	setUsage(2_250_000)
	mc.waitReading(t, "with the new CPU time and the collector's samples", func(r *profile.Metrics) bool {
		cpu, _ := point(r, profile.ContainerCPUTime, ids)
		samples, _ := point(r, profile.AgentSamples, nil)
		delivered, _ := point(r, profile.AgentConsumerEvents, map[string]string{"consumer": "capture", "result": router.ResultDelivered})
		return cpu.Value == 2.25 && samples.Value > 0 && delivered.Value > 0
	})

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	mc.mu.Lock()
	defer mc.mu.Unlock()
	if !mc.shutdown {
		t.Error("the metrics consumer was not shut down")
	}
	// The last reading was taken at shutdown, after the collectors' final
	// flush: it counts every sample they published.
	close(profiles.events)
	var samples uint64
	for ev := range profiles.events {
		samples += sampleCount(ev)
	}
	final := mc.readings[len(mc.readings)-1]
	if p, _ := point(final, profile.AgentSamples, nil); p.Value != float64(samples) {
		t.Errorf("final reading counts %v samples, the consumer received %d", p.Value, samples)
	}
}
