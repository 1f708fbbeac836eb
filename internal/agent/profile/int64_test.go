package profile

import (
	"math"
	"testing"
)

func TestInt64SaturatesInsteadOfWrapping(t *testing.T) {
	for _, tc := range []struct {
		in   uint64
		want int64
	}{{0, 0}, {42, 42}, {math.MaxInt64, math.MaxInt64}, {math.MaxInt64 + 1, math.MaxInt64}, {math.MaxUint64, math.MaxInt64}} {
		if got := Int64(tc.in); got != tc.want {
			t.Errorf("Int64(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
