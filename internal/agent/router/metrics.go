package router

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
)

// Results of kprof_agent_router_events_total.
const (
	ResultDelivered = "delivered"
	ResultFailed    = "failed"
	ResultDropped   = "dropped"
)

// Metrics are the router's Prometheus metrics, labelled by consumer name.
type Metrics struct {
	events      *prometheus.CounterVec // consumer, result
	queueLength *prometheus.GaugeVec   // consumer
}

// NewMetrics creates the router metrics and registers them with reg (not
// registered when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	set := promreg.New(reg, "router metrics")
	m := &Metrics{
		events:      set.CounterVec("kprof_agent_router_events_total", "Profile events per consumer by result: delivered (consumed), failed (the consumer returned an error), dropped (its queue was full or the router was shutting down).", "consumer", "result"),
		queueLength: set.GaugeVec("kprof_agent_router_queue_length", "Profile events waiting in a consumer's queue.", "consumer"),
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// consumerMetrics are one consumer's series, created (at 0) when it registers.
type consumerMetrics struct {
	delivered, failed, dropped prometheus.Counter
	queueLength                prometheus.Gauge
}

func (m *Metrics) forConsumer(name string) consumerMetrics {
	return consumerMetrics{
		delivered:   m.events.WithLabelValues(name, ResultDelivered),
		failed:      m.events.WithLabelValues(name, ResultFailed),
		dropped:     m.events.WithLabelValues(name, ResultDropped),
		queueLength: m.queueLength.WithLabelValues(name),
	}
}
