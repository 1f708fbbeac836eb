package promreg

import (
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// series counts the series reg gathers.
func series(t *testing.T, reg *prometheus.Registry) int {
	t.Helper()
	n, err := testutil.GatherAndCount(reg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSet(t *testing.T) {
	t.Run("a nil registerer registers nothing and the metrics still work", func(t *testing.T) {
		s := New(nil, "test metrics")
		c := s.CounterVec("kprof_test_total", "Test.", "config")
		c.WithLabelValues("a").Inc()
		if s.Err() != nil || testutil.ToFloat64(c.WithLabelValues("a")) != 1 {
			t.Fatalf("err %v, value %v", s.Err(), testutil.ToFloat64(c.WithLabelValues("a")))
		}
	})
	t.Run("every metric is registered under its name, help and labels", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := New(reg, "test metrics")
		s.Counter("kprof_a_total", "A.").Inc()
		s.CounterVec("kprof_b_total", "B.", "x").WithLabelValues("1").Inc()
		s.Gauge("kprof_c", "C.").Set(1)
		s.GaugeVec("kprof_d", "D.", "y").WithLabelValues("2").Set(1)
		s.HistogramVec("kprof_e_seconds", "E.", []float64{1}, "z").WithLabelValues("3").Observe(0.5)
		if s.Err() != nil {
			t.Fatal(s.Err())
		}
		if n := series(t, reg); n != 5 {
			t.Fatalf("gathered %d series, want 5", n)
		}
	})
	t.Run("a second registration of a name is an error that names the component", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		New(reg, "first metrics").Counter("kprof_a_total", "A.")
		s := New(reg, "second metrics")
		s.Counter("kprof_a_total", "A.")
		later := s.Gauge("kprof_later", "Later.")
		var are prometheus.AlreadyRegisteredError
		if err := s.Err(); !errors.As(err, &are) || !strings.HasPrefix(err.Error(), "register second metrics: ") {
			t.Fatalf("err = %v", err)
		}
		if reg.Unregister(later) {
			t.Error("a metric made after the error was registered")
		}
	})
	t.Run("a shared set reuses the vector registered before", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		a := Shared(reg, "loader metrics").CounterVec("kprof_a_total", "A.", "config")
		s := Shared(reg, "loader metrics")
		b := s.CounterVec("kprof_a_total", "A.", "config")
		if s.Err() != nil || a != b {
			t.Fatalf("err %v, same vector %v", s.Err(), a == b)
		}
	})
	t.Run("a shared set still fails on a name registered with other labels", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		Shared(reg, "loader metrics").CounterVec("kprof_a_total", "A.", "config")
		s := Shared(reg, "loader metrics")
		s.CounterVec("kprof_a_total", "A.", "other")
		if s.Err() == nil {
			t.Fatal("no error")
		}
	})
}
