// Package promreg creates a component's Prometheus metrics and registers them in
// one step, so every package names its metrics in one line each and registers
// them the same way: nothing with a nil Registerer (a component then runs without
// exporting metrics), the first error named after the component.
package promreg

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Set creates metrics and registers each with one Registerer as it is made. After
// the first error it registers nothing more; Err reports that error. The metrics
// it returns are usable even then, so a constructor can build its struct first and
// check Err once.
type Set struct {
	reg    prometheus.Registerer
	what   string
	shared bool
	err    error
}

// New returns a Set that registers with reg (nothing when reg is nil); what names
// the metrics in the error, e.g. "recorder metrics".
func New(reg prometheus.Registerer, what string) *Set {
	return &Set{reg: reg, what: what}
}

// Shared is New for a component made several times in one process (one unwind
// loader per collection config): a metric already registered is reused, not an
// error, so the instances share one vector and tell themselves apart by a label.
func Shared(reg prometheus.Registerer, what string) *Set {
	return &Set{reg: reg, what: what, shared: true}
}

// Err is the first registration error, "register <what>: ...", or nil.
func (s *Set) Err() error { return s.err }

// Counter is a counter without labels.
func (s *Set) Counter(name, help string) prometheus.Counter {
	return register(s, prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help}))
}

// CounterVec is a counter with the given labels.
func (s *Set) CounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	return register(s, prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels))
}

// Gauge is a gauge without labels.
func (s *Set) Gauge(name, help string) prometheus.Gauge {
	return register(s, prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help}))
}

// GaugeVec is a gauge with the given labels.
func (s *Set) GaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return register(s, prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels))
}

// HistogramVec is a histogram with the given buckets and labels.
func (s *Set) HistogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	return register(s, prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets}, labels))
}

// Collector registers a collector of the component's own making (one computed at
// scrape time, say).
func (s *Set) Collector(c prometheus.Collector) {
	register(s, c)
}

// register registers c and returns the collector to use: c, or in a shared Set
// the one registered before with the same description.
func register[C prometheus.Collector](s *Set, c C) C {
	if s.reg == nil || s.err != nil {
		return c
	}
	err := s.reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if s.shared && errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	s.err = fmt.Errorf("register %s: %w", s.what, err)
	return c
}
