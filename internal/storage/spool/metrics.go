package spool

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/promreg"
	"github.com/kprof/kprof/internal/storage"
)

// Metrics are the spool metrics, shared by every spool of a process (one per
// remote store). Every series has a store label, Remote.String(); the other
// labels are bounded (result, storage.ErrorKind, eviction reason). The gauges
// are computed from the registered spools at scrape time. A nil *Metrics
// records nothing.
type Metrics struct {
	uploads   *prometheus.CounterVec   // store, result
	failures  *prometheus.CounterVec   // store, kind
	evictions *prometheus.CounterVec   // store, reason
	duration  *prometheus.HistogramVec // store
	state     *stateCollector
}

// NewMetrics creates the spool metrics and registers them with reg (not
// registered when reg is nil).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	set := promreg.New(reg, "spool metrics")
	m := &Metrics{
		uploads:   set.CounterVec("kprof_spool_uploads_total", "Upload attempts of spooled profiles to the remote store, by result (success or failure).", "store", "result"),
		failures:  set.CounterVec("kprof_spool_upload_failures_total", "Failed upload attempts by error kind (EndpointUnreachable, InvalidCredentials, NoSuchBucket, AccessDenied, VerifyFailed, StoreError); the entry is kept and retried.", "store", "kind"),
		evictions: set.CounterVec("kprof_spool_evictions_total", "Spooled profiles discarded without upload, by reason (max-bytes, max-age, corrupt).", "store", "reason"),
		duration:  set.HistogramVec("kprof_spool_upload_duration_seconds", "Duration of upload attempts to the remote store, successful or not.", []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}, "store"),
		state:     newStateCollector(),
	}
	set.Collector(m.state)
	if err := set.Err(); err != nil {
		return nil, err
	}
	return m, nil
}

// register makes s the source of the gauges labelled store. Two live spools
// cannot share a store label: their series would collide.
func (m *Metrics) register(store string, s *Spool) error {
	if m == nil {
		return nil
	}
	if err := m.state.add(store, s); err != nil {
		return err
	}
	for _, r := range []string{"success", "failure"} {
		m.uploads.WithLabelValues(store, r)
	}
	for _, r := range []string{ReasonMaxBytes, ReasonMaxAge, ReasonCorrupt} {
		m.evictions.WithLabelValues(store, r)
	}
	return nil
}

func (m *Metrics) unregister(store string, s *Spool) {
	if m != nil {
		m.state.remove(store, s)
	}
}

func (m *Metrics) uploaded(store string, seconds float64) {
	if m != nil {
		m.uploads.WithLabelValues(store, "success").Inc()
		m.duration.WithLabelValues(store).Observe(seconds)
	}
}

func (m *Metrics) failed(store string, kind storage.ErrorKind, seconds float64) {
	if m != nil {
		m.uploads.WithLabelValues(store, "failure").Inc()
		m.failures.WithLabelValues(store, string(kind)).Inc()
		m.duration.WithLabelValues(store).Observe(seconds)
	}
}

func (m *Metrics) evicted(store, reason string) {
	if m != nil {
		m.evictions.WithLabelValues(store, reason).Inc()
	}
}

// stateCollector reports the entries, bytes and oldest entry age of every
// registered spool when scraped.
type stateCollector struct {
	entries, bytes, oldest *prometheus.Desc

	mu     sync.Mutex
	spools map[string]*Spool
}

func newStateCollector() *stateCollector {
	return &stateCollector{
		entries: prometheus.NewDesc("kprof_spool_entries",
			"Profiles in the spool waiting for upload.", []string{"store"}, nil),
		bytes: prometheus.NewDesc("kprof_spool_bytes",
			"Bytes of profile data in the spool waiting for upload.", []string{"store"}, nil),
		oldest: prometheus.NewDesc("kprof_spool_oldest_entry_age_seconds",
			"Age of the oldest profile in the spool; 0 when empty.", []string{"store"}, nil),
		spools: map[string]*Spool{},
	}
}

func (c *stateCollector) add(store string, s *Spool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.spools[store]; dup {
		return fmt.Errorf("register spool metrics: another spool already reports store %q", store)
	}
	c.spools[store] = s
	return nil
}

func (c *stateCollector) remove(store string, s *Spool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.spools[store] == s {
		delete(c.spools, store)
	}
}

// Describe implements prometheus.Collector.
func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.entries
	ch <- c.bytes
	ch <- c.oldest
}

// Collect implements prometheus.Collector.
func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	spools := make(map[string]*Spool, len(c.spools))
	for k, v := range c.spools {
		spools[k] = v
	}
	c.mu.Unlock()
	for store, s := range spools {
		n, b, age := s.stats()
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(n), store)
		ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(b), store)
		ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age.Seconds(), store)
	}
}
