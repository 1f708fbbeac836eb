package capture

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
)

// Metrics are the engine's Prometheus metrics. Labels are bounded: profile type,
// result, failure reason, skip reason and policy group; never a pod or URL.
// A nil *Metrics records nothing.
type Metrics struct {
	captures *prometheus.CounterVec   // type, result
	failures *prometheus.CounterVec   // type, reason
	duration *prometheus.HistogramVec // type
	bytes    *prometheus.CounterVec   // type
	inFlight prometheus.Gauge
	skipped  *prometheus.CounterVec // reason
	targets  *prometheus.GaugeVec   // group
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
	set := promreg.New(reg, "capture metrics")
	m := &Metrics{
		captures: set.CounterVec("kprof_captures_total", "Capture attempts of one profile type of one target, by result (success or failure).", "type", "result"),
		failures: set.CounterVec("kprof_capture_failures_total", "Failed capture attempts by profile type and reason (Timeout, HTTPStatus, TooLarge, NotPprof, StoreFailed, Canceled, ConnectFailed, FetchFailed, InvalidPolicy).", "type", "reason"),
		duration: set.HistogramVec("kprof_capture_duration_seconds", "Time from request start to stored (or failed) per capture attempt, by profile type.", []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 45, 60, 90, 120}, "type"),
		bytes:    set.CounterVec("kprof_capture_bytes_total", "Bytes of profiles stored, by profile type.", "type"),
		inFlight: set.Gauge("kprof_captures_in_flight", "Target rounds currently fetching or storing profiles."),
		skipped:  set.CounterVec("kprof_capture_rounds_skipped_total", "Scheduled rounds not run, by reason (overlap: the previous round of the target was still running).", "reason"),
		targets:  set.GaugeVec("kprof_targets", "Targets known to the capture engine, by policy group.", "group"),
	}
	if err := set.Err(); err != nil {
		return nil, err
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
