package threshold

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
)

// Values of the result label of kprof_trigger_checks_total.
const (
	CheckSuccess     = "success"     // usage read and every target evaluated
	CheckUnavailable = "unavailable" // the Source failed with an IsMetricsUnavailable error
	CheckFailure     = "failure"     // the Source failed otherwise (e.g. RBAC)
)

// Values of the reason label of kprof_trigger_suppressed_total.
const (
	SuppressedCooldown = "cooldown" // crossing inside the pod's cooldown
	// SuppressedBusy: crossing deferred to the next check because the group had
	// MaxInFlight triggers outstanding, or the target's previous trigger was still running.
	SuppressedBusy = "busy"
)

// Metrics are the watcher's Prometheus metrics. Labels are bounded (result,
// resource, reason, stage); never a pod or group. A nil *Metrics records nothing.
type Metrics struct {
	checks         *prometheus.CounterVec   // result
	triggers       *prometheus.CounterVec   // resource
	suppressed     *prometheus.CounterVec   // reason
	latency        *prometheus.HistogramVec // stage
	recordFailures prometheus.Counter
}

// NewMetrics creates the watcher metrics and registers them with reg (not
// registered when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	set := promreg.New(reg, "trigger metrics")
	m := &Metrics{
		checks:         set.CounterVec("kprof_trigger_checks_total", "Threshold checks of a policy group, by result (success, unavailable: metrics.k8s.io unusable, failure).", "result"),
		triggers:       set.CounterVec("kprof_triggers_total", "Captures triggered by a threshold crossing, by the resource that crossed (cpu, memory).", "resource"),
		suppressed:     set.CounterVec("kprof_trigger_suppressed_total", "Threshold crossings that did not trigger, by reason (cooldown; busy: deferred to the next check by the in-flight limit or a running trigger of the pod).", "reason"),
		latency:        set.HistogramVec("kprof_trigger_latency_seconds", "Latency from a metrics sample to the capture it triggered, by stage (metrics: sample timestamp to usage read by kprof; kprof: usage read to capture started).", []float64{0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30, 45, 60, 90, 120, 300}, "stage"),
		recordFailures: set.Counter("kprof_trigger_record_failures_total", "Triggers not started because persisting them (for the cooldown) failed."),
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Metrics) check(result string) {
	if m != nil {
		m.checks.WithLabelValues(result).Inc()
	}
}

func (m *Metrics) suppress(reason string, n int) {
	if m != nil && n > 0 {
		m.suppressed.WithLabelValues(reason).Add(float64(n))
	}
}

func (m *Metrics) recordFailed() {
	if m != nil {
		m.recordFailures.Inc()
	}
}

func (m *Metrics) triggered(res string, l Latency) {
	if m == nil {
		return
	}
	m.triggers.WithLabelValues(res).Inc()
	m.latency.WithLabelValues("metrics").Observe(l.MetricsAge.Seconds())
	m.latency.WithLabelValues("kprof").Observe(l.kprofShare().Seconds())
}

// Latency splits the time from a metrics sample to the capture it triggered.
type Latency struct {
	// MetricsAge is how old the sample was when kprof had read it: usage read
	// (the check's detection time) minus PodMetrics.Timestamp. It is the
	// metrics pipeline's share (scrape resolution, metrics-server caching) plus
	// the wait for kprof's next check.
	MetricsAge time.Duration
	// Detect is the time from the sample to the start of the check that saw it
	// (0 when the sample is newer than the check's start).
	Detect time.Duration
	// Decide is the time from the check's start to the Trigger call (reading
	// usage, evaluating, persisting the cooldown).
	Decide time.Duration
}

// kprofShare is the time from usage read to Trigger call: Detect + Decide - MetricsAge.
func (l Latency) kprofShare() time.Duration {
	return max(0, l.Detect+l.Decide-l.MetricsAge)
}
