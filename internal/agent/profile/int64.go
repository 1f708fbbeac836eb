package profile

import "math"

// Int64 converts a count or period to the int64 that pprof and OTLP profiles hold,
// saturating at math.MaxInt64 instead of wrapping to a negative value.
func Int64(v uint64) int64 {
	if v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}
