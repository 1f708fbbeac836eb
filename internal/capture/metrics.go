package capture

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the engine's Prometheus metrics. Labels are bounded: profile type,
// result, failure reason, skip reason and policy group; never a pod or URL.
// A nil *Metrics records nothing.
type Metrics struct {
	captures   *prometheus.CounterVec   // type, result
	failures   *prometheus.CounterVec   // type, reason
	duration   *prometheus.HistogramVec // type
	bytes      *prometheus.CounterVec   // type
	inFlight   prometheus.Gauge
	skipped    *prometheus.CounterVec // reason
	targets    *prometheus.GaugeVec   // group
	collectors []prometheus.Collector
}

// Skip reasons for kprof_capture_rounds_skipped_total.
const (
	// SkipOverlap: the target's previous round was still running when the next one was due.
	SkipOverlap = "overlap"
	// SkipTriggerCoalesced: a triggered round was not started because a round of the
	// target was already capturing.
	SkipTriggerCoalesced = "trigger-coalesced"
)

// NewMetrics creates the engine metrics and registers them with reg (not
// registered when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		captures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_captures_total",
			Help: "Capture attempts of one profile type of one target, by result (success or failure).",
		}, []string{"type", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_capture_failures_total",
			Help: "Failed capture attempts by profile type and reason (Timeout, HTTPStatus, TooLarge, NotPprof, StoreFailed, Canceled, ConnectFailed, FetchFailed, InvalidPolicy).",
		}, []string{"type", "reason"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kprof_capture_duration_seconds",
			Help:    "Time from request start to stored (or failed) per capture attempt, by profile type.",
			Buckets: []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120},
		}, []string{"type"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_capture_bytes_total",
			Help: "Bytes of profiles stored, by profile type.",
		}, []string{"type"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_captures_in_flight",
			Help: "Target rounds currently fetching or storing profiles.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_capture_rounds_skipped_total",
			Help: "Scheduled rounds not run, by reason (overlap: the previous round of the target was still running).",
		}, []string{"reason"}),
		targets: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "kprof_targets",
			Help: "Targets known to the capture engine, by policy group.",
		}, []string{"group"}),
	}
	m.collectors = []prometheus.Collector{m.captures, m.failures, m.duration, m.bytes, m.inFlight, m.skipped, m.targets}
	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register capture metrics: %w", err)
			}
		}
	}
	return m, nil
}

func (m *Metrics) observe(r Result) {
	if m == nil {
		return
	}
	typ := string(r.Type)
	m.duration.WithLabelValues(typ).Observe(r.Duration.Seconds())
	if r.Err != nil {
		m.captures.WithLabelValues(typ, "failure").Inc()
		m.failures.WithLabelValues(typ, r.FailureReason).Inc()
		return
	}
	m.captures.WithLabelValues(typ, "success").Inc()
	m.bytes.WithLabelValues(typ).Add(float64(r.Bytes))
}

func (m *Metrics) roundStarted() {
	if m != nil {
		m.inFlight.Inc()
	}
}

func (m *Metrics) roundDone() {
	if m != nil {
		m.inFlight.Dec()
	}
}

func (m *Metrics) roundSkipped(reason string) {
	if m != nil {
		m.skipped.WithLabelValues(reason).Inc()
	}
}

func (m *Metrics) setTargets(group string, n int) {
	if m != nil {
		m.targets.WithLabelValues(group).Set(float64(n))
	}
}

func (m *Metrics) forgetGroup(group string) {
	if m != nil {
		m.targets.DeleteLabelValues(group)
	}
}
