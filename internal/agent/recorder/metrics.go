package recorder

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
)

// metrics are the recorder's Prometheus metrics.
type metrics struct {
	bytes, pods, buckets, pinned prometheus.Gauge
	evicted                      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	set := promreg.New(reg, "recorder metrics")
	m := &metrics{
		bytes:   set.Gauge("kprof_agent_recorder_bytes", "Approximate bytes of the samples the flight recorder holds (bounded by --recorder-max-bytes)."),
		pods:    set.Gauge("kprof_agent_recorder_pods", "Pods whose samples the flight recorder holds."),
		buckets: set.Gauge("kprof_agent_recorder_buckets", "Buckets (one per pod per collection interval) the flight recorder holds."),
		pinned:  set.Gauge("kprof_agent_recorder_pinned_pods", "Pods whose samples are pinned past the window for a capture that has not fetched them yet."),
		evicted: set.Counter("kprof_agent_recorder_evicted_buckets_total", "Buckets evicted before their time because the flight recorder reached --recorder-max-bytes (oldest first, pinned ones last)."),
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return m, nil
}
