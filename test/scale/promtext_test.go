package scale

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// families is one scrape of a Prometheus /metrics endpoint, by metric name.
type families map[string]*dto.MetricFamily

// scrape reads url in the Prometheus text format.
func scrape(ctx context.Context, url string) (families, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape %s: HTTP %s", url, resp.Status)
	}
	return parseText(io.LimitReader(resp.Body, 64<<20))
}

func parseText(r io.Reader) (families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	f, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse metrics: %w", err)
	}
	return f, nil
}

// matches reports whether m carries every label of want.
func matches(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.GetLabel() {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}

// sum adds the counters, gauges or untyped values of name whose labels match want (nil: all).
func (f families) sum(name string, want map[string]string) float64 {
	var s float64
	for _, m := range f[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		case m.Untyped != nil:
			s += m.GetUntyped().GetValue()
		}
	}
	return s
}

// by sums the values of name matching want, grouped by the value of label.
func (f families) by(name, label string, want map[string]string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range f[name].GetMetric() {
		if !matches(m, want) {
			continue
		}
		key := ""
		for _, l := range m.GetLabel() {
			if l.GetName() == label {
				key = l.GetValue()
			}
		}
		out[key] += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
	}
	return out
}

// histogram is a cumulative Prometheus histogram: counts[i] observations were <= bounds[i];
// the last bound is +Inf.
type histogram struct {
	bounds []float64
	counts []float64
	sum    float64
}

// histogram merges the series of name matching want (they must share their buckets).
func (f families) histogram(name string, want map[string]string) histogram {
	var h histogram
	for _, m := range f[name].GetMetric() {
		if !matches(m, want) || m.Histogram == nil {
			continue
		}
		hm := m.GetHistogram()
		var bounds, counts []float64
		for _, b := range hm.GetBucket() {
			if !math.IsInf(b.GetUpperBound(), 1) {
				bounds = append(bounds, b.GetUpperBound())
				counts = append(counts, float64(b.GetCumulativeCount()))
			}
		}
		bounds = append(bounds, math.Inf(1))
		counts = append(counts, float64(hm.GetSampleCount()))
		if h.bounds == nil {
			h.bounds, h.counts = bounds, make([]float64, len(bounds))
		}
		if !slices.Equal(h.bounds, bounds) {
			continue // other buckets: cannot be merged
		}
		for i, c := range counts {
			h.counts[i] += c
		}
		h.sum += hm.GetSampleSum()
	}
	return h
}

// count is the number of observations.
func (h histogram) count() float64 {
	if len(h.counts) == 0 {
		return 0
	}
	return h.counts[len(h.counts)-1]
}

// minus returns the observations of h that are not in earlier (a scrape of the same
// histogram taken before h).
func (h histogram) minus(earlier histogram) histogram {
	out := histogram{bounds: slices.Clone(h.bounds), counts: slices.Clone(h.counts), sum: h.sum - earlier.sum}
	if slices.Equal(h.bounds, earlier.bounds) {
		for i := range out.counts {
			out.counts[i] -= earlier.counts[i]
		}
	}
	return out
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile does: linear
// interpolation inside the bucket holding the rank (from 0 for the first bucket); a rank in
// the +Inf bucket returns the highest finite bound. NaN without observations.
func (h histogram) quantile(q float64) float64 {
	n := h.count()
	if n == 0 || len(h.bounds) < 2 {
		return math.NaN()
	}
	rank := q * n
	i := slices.IndexFunc(h.counts, func(c float64) bool { return c >= rank })
	if i >= len(h.bounds)-1 {
		return h.bounds[len(h.bounds)-2]
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = h.bounds[i-1], h.counts[i-1]
	}
	inBucket := h.counts[i] - below
	if inBucket <= 0 {
		return h.bounds[i]
	}
	return lo + (h.bounds[i]-lo)*(rank-below)/inBucket
}
