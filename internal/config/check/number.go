package check

import "fmt"

// Number is what NotNegative checks: counts, byte sizes and durations.
type Number interface {
	~int | ~int32 | ~int64 | ~float64
}

// NotNegative reports a negative v as "name: must not be negative, got v"; zero is
// accepted, since it means the default.
func NotNegative[T Number](name string, v T) error {
	if v < 0 {
		return fmt.Errorf("%s: must not be negative, got %v", name, v)
	}
	return nil
}
