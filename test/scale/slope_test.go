package scale

import (
	"math"
	"testing"
	"time"
)

// rssSlope is the least-squares slope of samples taken every step, in bytes per hour: the
// soak's measure of memory that grows with time (0 for fewer than two samples).
func rssSlope(samples []int64, step time.Duration) float64 {
	n := float64(len(samples))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i, v := range samples {
		x, y := float64(i)*step.Hours(), float64(v)
		sx, sy, sxx, sxy = sx+x, sy+y, sxx+x*x, sxy+x*y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx)
}

func mean(samples []int64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range samples {
		s += float64(v)
	}
	return s / float64(len(samples))
}

func TestRSSSlopeIsBytesPerHour(t *testing.T) {
	for _, tc := range []struct {
		name    string
		samples []int64
		step    time.Duration
		want    float64
	}{
		{"flat memory has slope zero", []int64{100, 100, 100, 100}, time.Second, 0},
		{"one MiB a minute is 60 MiB an hour", []int64{0, 1 << 20, 2 << 20, 3 << 20}, time.Minute, 60 << 20},
		{"noise around a flat line has slope zero", []int64{100, 110, 90, 90, 110, 100}, time.Second, 0},
		{"a single sample has no slope", []int64{5}, time.Second, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rssSlope(tc.samples, tc.step); math.Abs(got-tc.want) > 1e-6*math.Max(1, math.Abs(tc.want)) {
				t.Errorf("rssSlope(%v, %s) = %g, want %g", tc.samples, tc.step, got, tc.want)
			}
		})
	}
}
