package nodethreshold

import (
	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kprof/kprof/internal/promreg"
)

// Values of the reason label of kprof_agent_threshold_suppressed_total.
const (
	SuppressedCooldown = "cooldown" // the config's status.lastTriggers puts the pod in its cooldown
	SuppressedRecent   = "recent"   // this agent created a capture for the pod less than the cooldown ago
	SuppressedBackoff  = "backoff"  // the previous create for the pod failed less than a backoff ago
	SuppressedInFlight = "inflight" // a create for the pod is running
	SuppressedBusy     = "busy"     // MaxInFlight creates running: retried at the next reading
)

// Values of the operation label of kprof_agent_node_thresholds_forbidden.
const (
	OpWatchConfigs   = "watch_profilingconfigs"
	OpCreateCaptures = "create_profilecaptures"
)

// metrics of the node thresholds. Labels are bounded: never a pod or a config.
type metrics struct {
	crossings    *prometheus.CounterVec // resource
	captures     *prometheus.CounterVec // resource
	suppressed   *prometheus.CounterVec // reason
	createErrors *prometheus.CounterVec // reason (API status reason)
	uncomputable prometheus.Gauge
	uncompReport prometheus.Counter
	forbidden    *prometheus.GaugeVec // operation
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	set := promreg.New(reg, "node threshold metrics")
	m := &metrics{
		crossings:    set.CounterVec("kprof_agent_threshold_crossings_total", "Evaluations (one per reading, config and pod) in which a pod of this node was at or above a threshold, by resource (cpu, memory); suppressed ones included.", "resource"),
		captures:     set.CounterVec("kprof_agent_threshold_captures_total", "ProfileCaptures created by the agent for a threshold crossing, by resource (cpu, memory).", "resource"),
		suppressed:   set.CounterVec("kprof_agent_threshold_suppressed_total", "Threshold crossings that created no ProfileCapture, by reason (cooldown: status.lastTriggers; recent: created by this agent within the cooldown; backoff: a create failed recently; inflight: a create is running; busy: too many creates running).", "reason"),
		createErrors: set.CounterVec("kprof_agent_threshold_create_errors_total", "ProfileCapture creates that failed, by the API server's reason (Forbidden, Invalid, Timeout, ...; Unknown when none).", "reason"),
		uncomputable: set.Gauge("kprof_agent_threshold_uncomputable_pods", "Pods (per ProfilingConfig) of this node whose usage percentage cannot be computed for some container or resource (no request or limit, no such container)."),
		uncompReport: set.Counter("kprof_agent_threshold_uncomputable_reports_total", "Changes of a pod's uncomputable percentages reported (logged)."),
		forbidden:    set.GaugeVec("kprof_agent_node_thresholds_forbidden", "1 while the API server refuses the agent an operation the node thresholds need (watch_profilingconfigs, create_profilecaptures): its RBAC lacks the permission.", "operation"),
	}
	m.forbidden.WithLabelValues(OpWatchConfigs).Set(0)
	m.forbidden.WithLabelValues(OpCreateCaptures).Set(0)
	if err := set.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) suppress(reason string) { m.suppressed.WithLabelValues(reason).Inc() }

func (m *metrics) createFailed(err error) {
	reason := string(apierrors.ReasonForError(err))
	if reason == "" {
		reason = "Unknown"
	}
	m.createErrors.WithLabelValues(reason).Inc()
}
