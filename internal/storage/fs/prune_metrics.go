package fs

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// PruneMetrics are the metrics of a Pruner. A nil *PruneMetrics records nothing.
type PruneMetrics struct {
	pruned      *prometheus.CounterVec // reason
	prunedBytes *prometheus.CounterVec // reason
	errors      prometheus.Counter
	profiles    prometheus.Gauge
	bytes       prometheus.Gauge
}

// NewPruneMetrics creates the metrics and registers them with reg (not registered
// when reg is nil).
func NewPruneMetrics(reg prometheus.Registerer) (*PruneMetrics, error) {
	m := &PruneMetrics{
		pruned: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_local_profiles_pruned_total",
			Help: "Profiles deleted from the operator's profiles directory by retention, by reason (max-age, max-bytes: the operator's bounds; config-max-age, config-max-bytes: spec.localStorage's).",
		}, []string{"reason"}),
		prunedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kprof_local_profiles_pruned_bytes_total",
			Help: "Bytes (profiles and their metadata) deleted from the operator's profiles directory by retention, by reason.",
		}, []string{"reason"}),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kprof_local_profiles_prune_errors_total",
			Help: "Retention sweeps of the operator's profiles directory that met an error (see the operator's log).",
		}),
		profiles: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_local_profiles",
			Help: "Profiles in the operator's profiles directory after the last retention sweep.",
		}),
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_local_profiles_bytes",
			Help: "Bytes of profiles and their metadata in the operator's profiles directory after the last retention sweep (temporary files of writes in progress excluded).",
		}),
	}
	for _, r := range PruneReasons {
		m.pruned.WithLabelValues(r)
		m.prunedBytes.WithLabelValues(r)
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.pruned, m.prunedBytes, m.errors, m.profiles, m.bytes} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register local profile retention metrics: %w", err)
			}
		}
	}
	return m, nil
}

// record adds one sweep's result.
func (m *PruneMetrics) record(res SweepResult) {
	if m == nil {
		return
	}
	for r, n := range res.Pruned {
		m.pruned.WithLabelValues(r).Add(float64(n))
	}
	for r, b := range res.FreedBytes {
		m.prunedBytes.WithLabelValues(r).Add(float64(b))
	}
	if res.Err != nil {
		m.errors.Inc()
	}
	m.profiles.Set(float64(res.Profiles))
	m.bytes.Set(float64(res.Bytes))
}
