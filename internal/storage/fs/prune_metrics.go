package fs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
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
	set := promreg.New(reg, "local profile retention metrics")
	m := &PruneMetrics{
		pruned:      set.CounterVec("kprof_local_profiles_pruned_total", "Profiles deleted from the operator's profiles directory by retention, by reason (max-age, max-bytes: the operator's bounds; config-max-age, config-max-bytes: spec.localStorage's).", "reason"),
		prunedBytes: set.CounterVec("kprof_local_profiles_pruned_bytes_total", "Bytes (profiles and their metadata) deleted from the operator's profiles directory by retention, by reason.", "reason"),
		errors:      set.Counter("kprof_local_profiles_prune_errors_total", "Retention sweeps of the operator's profiles directory that met an error (see the operator's log)."),
		profiles:    set.Gauge("kprof_local_profiles", "Profiles in the operator's profiles directory after the last retention sweep."),
		bytes:       set.Gauge("kprof_local_profiles_bytes", "Bytes of profiles and their metadata in the operator's profiles directory after the last retention sweep (temporary files of writes in progress excluded)."),
	}
	for _, r := range PruneReasons {
		m.pruned.WithLabelValues(r)
		m.prunedBytes.WithLabelValues(r)
	}
	if err := set.Err(); err != nil {
		return nil, err
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
