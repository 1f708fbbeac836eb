package recorder

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the recorder's Prometheus metrics.
type metrics struct {
	bytes, pods, buckets, pinned prometheus.Gauge
	evicted                      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		bytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_agent_recorder_bytes",
			Help: "Approximate bytes of the samples the flight recorder holds (bounded by --recorder-max-bytes).",
		}),
		pods: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_agent_recorder_pods",
			Help: "Pods whose samples the flight recorder holds.",
		}),
		buckets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_agent_recorder_buckets",
			Help: "Buckets (one per pod per collection interval) the flight recorder holds.",
		}),
		pinned: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "kprof_agent_recorder_pinned_pods",
			Help: "Pods whose samples are pinned past the window for a capture that has not fetched them yet.",
		}),
		evicted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "kprof_agent_recorder_evicted_buckets_total",
			Help: "Buckets evicted before their time because the flight recorder reached --recorder-max-bytes (oldest first, pinned ones last).",
		}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.bytes, m.pods, m.buckets, m.pinned, m.evicted} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("register recorder metrics: %w", err)
			}
		}
	}
	return m, nil
}
