package scale

import (
	"math"
	"strings"
	"testing"
)

// The scale benchmark publishes quantiles computed from scraped histograms; these tests pin
// the arithmetic to Prometheus' histogram_quantile on known buckets.

const scrapeA = `# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per controller
# TYPE controller_runtime_reconcile_time_seconds histogram
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="0.01"} 10
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="0.1"} 90
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="1"} 100
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="+Inf"} 100
controller_runtime_reconcile_time_seconds_sum{controller="profilingconfig"} 5
controller_runtime_reconcile_time_seconds_count{controller="profilingconfig"} 100
controller_runtime_reconcile_time_seconds_bucket{controller="other",le="0.01"} 7
controller_runtime_reconcile_time_seconds_bucket{controller="other",le="0.1"} 7
controller_runtime_reconcile_time_seconds_bucket{controller="other",le="1"} 7
controller_runtime_reconcile_time_seconds_bucket{controller="other",le="+Inf"} 7
controller_runtime_reconcile_time_seconds_sum{controller="other"} 0.01
controller_runtime_reconcile_time_seconds_count{controller="other"} 7
# TYPE controller_runtime_reconcile_total counter
controller_runtime_reconcile_total{controller="profilingconfig",result="success"} 95
controller_runtime_reconcile_total{controller="profilingconfig",result="requeue"} 5
controller_runtime_reconcile_total{controller="other",result="success"} 7
`

// scrapeB is scrapeA after 100 more reconciles, 10 of them slower than the largest bucket.
const scrapeB = `# TYPE controller_runtime_reconcile_time_seconds histogram
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="0.01"} 10
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="0.1"} 90
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="1"} 190
controller_runtime_reconcile_time_seconds_bucket{controller="profilingconfig",le="+Inf"} 200
controller_runtime_reconcile_time_seconds_sum{controller="profilingconfig"} 105
controller_runtime_reconcile_time_seconds_count{controller="profilingconfig"} 200
`

func parse(t *testing.T, text string) families {
	t.Helper()
	f, err := parseText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestHistogramQuantileInterpolatesInsideTheBucketLikePrometheus(t *testing.T) {
	h := parse(t, scrapeA).histogram("controller_runtime_reconcile_time_seconds", map[string]string{"controller": "profilingconfig"})
	if h.count() != 100 {
		t.Fatalf("count = %v, want 100 (the other controller's series must not be merged in)", h.count())
	}
	for _, tc := range []struct {
		q, want float64
	}{
		{0.05, 0.005}, // rank 5 of the 10 in [0, 0.01]
		{0.5, 0.01 + 0.09*40/80},
		{0.9, 0.1},
		{0.99, 0.1 + 0.9*9/10},
	} {
		if got := h.quantile(tc.q); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
}

func TestHistogramMinusKeepsOnlyTheObservationsOfTheWindow(t *testing.T) {
	sel := map[string]string{"controller": "profilingconfig"}
	a := parse(t, scrapeA).histogram("controller_runtime_reconcile_time_seconds", sel)
	b := parse(t, scrapeB).histogram("controller_runtime_reconcile_time_seconds", sel)
	w := b.minus(a)
	if w.count() != 100 || w.sum != 100 {
		t.Fatalf("window: count %v sum %v, want 100 and 100", w.count(), w.sum)
	}
	if got := w.quantile(0.5); math.Abs(got-(0.1+0.9*50/90)) > 1e-9 {
		t.Errorf("window p50 = %v, want inside (0.1, 1]", got)
	}
	if got := w.quantile(0.99); got != 1 {
		t.Errorf("window p99 = %v, want the highest finite bound 1 (the rank is in +Inf)", got)
	}
	if got := (histogram{}).quantile(0.5); !math.IsNaN(got) {
		t.Errorf("quantile of an empty histogram = %v, want NaN", got)
	}
}

func TestSumAndByFilterOnLabels(t *testing.T) {
	f := parse(t, scrapeA)
	if got := f.sum("controller_runtime_reconcile_total", map[string]string{"controller": "profilingconfig"}); got != 100 {
		t.Errorf("sum = %v, want 100", got)
	}
	by := f.by("controller_runtime_reconcile_total", "result", map[string]string{"controller": "profilingconfig"})
	if by["success"] != 95 || by["requeue"] != 5 || len(by) != 2 {
		t.Errorf("by result = %v, want success 95, requeue 5", by)
	}
	if got := f.sum("no_such_metric", nil); got != 0 {
		t.Errorf("sum of a missing metric = %v, want 0", got)
	}
}
