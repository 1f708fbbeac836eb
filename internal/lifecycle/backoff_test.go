package lifecycle

import (
	"testing"
	"time"
)

func TestBackoffNominal(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		n    int
		want time.Duration
	}{
		{"the first failure waits Base", Backoff{time.Second, time.Minute}, 1, time.Second},
		{"a count below one counts as the first failure", Backoff{time.Second, time.Minute}, 0, time.Second},
		{"each further failure doubles the wait", Backoff{time.Second, time.Minute}, 4, 8 * time.Second},
		{"the wait stops at Max", Backoff{time.Second, time.Minute}, 7, time.Minute},
		{"a failure count past any shift still waits Max", Backoff{time.Second, time.Minute}, 1000, time.Minute},
		{"a Max below Base waits Max", Backoff{time.Minute, time.Second}, 1, time.Second},
		{"no Base waits nothing", Backoff{0, time.Minute}, 3, 0},
		{"no Max waits nothing", Backoff{time.Second, 0}, 3, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.b.Nominal(tc.n); got != tc.want {
				t.Errorf("Nominal(%d) = %s, want %s", tc.n, got, tc.want)
			}
		})
	}
}

func TestBackoffDelay(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Backoff
		n    int
	}{
		{"the first failure's delay lies in the upper half of Base", Backoff{time.Second, time.Minute}, 1},
		{"a capped delay lies in the upper half of Max", Backoff{time.Second, time.Minute}, 30},
		{"a one-nanosecond backoff waits zero or one nanosecond", Backoff{1, 1}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := tc.b.Nominal(tc.n)
			lo, hi := d, time.Duration(0)
			for range 2000 {
				got := tc.b.Delay(tc.n)
				if got < d/2 || got > d {
					t.Fatalf("Delay(%d) = %s, outside [%s, %s]", tc.n, got, d/2, d)
				}
				lo, hi = min(lo, got), max(hi, got)
			}
			// 2000 uniform draws leave the lower and the upper quarter of the range
			// empty with a chance of 2^-830 at most: a real spread, not a constant.
			if d >= 4 && (lo > d/2+d/8 || hi < d-d/8) {
				t.Errorf("2000 delays span only [%s, %s] of [%s, %s]", lo, hi, d/2, d)
			}
		})
	}
	t.Run("no backoff waits nothing", func(t *testing.T) {
		if got := (Backoff{}).Delay(5); got != 0 {
			t.Errorf("Delay = %s, want 0", got)
		}
	})
}
