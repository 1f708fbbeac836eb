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

// NotBelow reports a ceiling below its floor, such as a backoff's largest delay below
// its first, as "name: must not be below floorName (floor), got v". A zero on either
// side means its default and is not compared.
func NotBelow[T Number](name string, v T, floorName string, floor T) error {
	if v > 0 && floor > 0 && v < floor {
		return fmt.Errorf("%s: must not be below %s (%v), got %v", name, floorName, floor, v)
	}
	return nil
}
