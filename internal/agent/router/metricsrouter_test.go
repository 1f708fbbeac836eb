package router

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/agent/profile"
)

// metricsRecorder records the readings it consumes; the first failFirst fail.
type metricsRecorder struct {
	failFirst int

	mu   sync.Mutex
	got  []*profile.Metrics
	seen chan struct{}
}

func (m *metricsRecorder) Name() string { return "otlp-metrics" }

func (m *metricsRecorder) Consume(_ context.Context, r *profile.Metrics) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer func() { m.seen <- struct{}{} }()
	if m.failFirst > 0 {
		m.failFirst--
		return errors.New("collector down")
	}
	m.got = append(m.got, r)
	return nil
}

func (m *metricsRecorder) Shutdown(context.Context) error { return nil }

// A metrics router shares the Prometheus metrics of a profile router (one
// registry, consumers told apart by name) and delivers readings in order,
// ignoring nil ones, counting failures.
func TestMetricsRouterDeliversReadings(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	profiles, err := New(Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := profiles.Register(&recorder{name: "otlp-profiles"}); err != nil {
		t.Fatal(err)
	}
	metrics, err := NewMetricsRouter(Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	rec := &metricsRecorder{failFirst: 1, seen: make(chan struct{}, 8)}
	if err := metrics.Register(rec); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := profiles.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := metrics.Start(ctx); err != nil {
		t.Fatal(err)
	}
	metrics.Publish(nil)
	for i := range 3 {
		metrics.Publish(&profile.Metrics{Points: make([]profile.Point, i+1)})
	}
	for range 3 {
		select {
		case <-rec.seen:
		case <-time.After(waitDeadline):
			t.Fatal("readings not consumed")
		}
	}
	sctx, cancel := context.WithTimeout(ctx, waitDeadline)
	defer cancel()
	if err := metrics.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	if err := profiles.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.got) != 2 || len(rec.got[0].Points) != 2 || len(rec.got[1].Points) != 3 {
		t.Fatalf("consumed %d readings, want the 2nd and 3rd in order", len(rec.got))
	}
	st := metrics.Stats()["otlp-metrics"]
	if st.Delivered != 2 || st.Failed != 1 || st.Dropped != 0 {
		t.Fatalf("stats %+v, want 2 delivered, 1 failed", st)
	}
	if got := testutil.ToFloat64(m.events.WithLabelValues("otlp-metrics", ResultFailed)); got != 1 {
		t.Fatalf("kprof_agent_router_events_total{consumer=otlp-metrics,result=failed} = %v, want 1", got)
	}
}
