package profdiff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/pprof/profile"
)

// Defaults of MergeConfig.
const (
	DefaultMaxInputs     = 10_000
	DefaultMaxFileBytes  = 64 << 20
	DefaultMaxSamples    = 2_000_000
	DefaultMaxTotalBytes = 4 << 30
	DefaultBatch         = 16
)

// MergeConfig configures Merge.
type MergeConfig struct {
	// MaxInputs is the most profiles one merge reads; DefaultMaxInputs when zero.
	MaxInputs int
	// MaxFileBytes is the largest profile file read; DefaultMaxFileBytes when zero.
	MaxFileBytes int64
	// MaxSamples bounds the samples of the merged profile (what it holds in memory);
	// DefaultMaxSamples when zero.
	MaxSamples int
	// MaxTotalBytes bounds the sum of the input file sizes; DefaultMaxTotalBytes when zero.
	MaxTotalBytes int64
	// Batch is how many parsed profiles are held before they are merged into the
	// running result; DefaultBatch when zero. 1 merges each profile as it is read.
	Batch int
	// Progress, when set, is called after each input is read, with the count done.
	Progress func(done, total int)
}

// SetDefaults fills zero fields.
func (c *MergeConfig) SetDefaults() {
	if c.MaxInputs == 0 {
		c.MaxInputs = DefaultMaxInputs
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = DefaultMaxFileBytes
	}
	if c.MaxSamples == 0 {
		c.MaxSamples = DefaultMaxSamples
	}
	if c.MaxTotalBytes == 0 {
		c.MaxTotalBytes = DefaultMaxTotalBytes
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
}

// Validate reports a bad field by name.
func (c *MergeConfig) Validate() error {
	var errs []error
	if c.MaxInputs < 1 {
		errs = append(errs, fmt.Errorf("MaxInputs: must be at least 1, got %d", c.MaxInputs))
	}
	if c.MaxFileBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxFileBytes: must be at least 1, got %d", c.MaxFileBytes))
	}
	if c.MaxSamples < 1 {
		errs = append(errs, fmt.Errorf("MaxSamples: must be at least 1, got %d", c.MaxSamples))
	}
	if c.MaxTotalBytes < 1 {
		errs = append(errs, fmt.Errorf("MaxTotalBytes: must be at least 1, got %d", c.MaxTotalBytes))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("Batch: must be at least 1, got %d", c.Batch))
	}
	return errors.Join(errs...)
}

// Merged is the result of Merge.
type Merged struct {
	Profile *profile.Profile
	// Inputs is how many profiles were merged.
	Inputs int
	// Type is the profile type (of the sidecars or names, else from the sample types).
	Type string
	// Duration is the sum of the inputs' durations (duration_nanos, or the sidecar's
	// duration where the profile has none): the recorded time of a CPU profile.
	Duration time.Duration
}

// LimitError is a merge refused because a MergeConfig limit would be exceeded.
type LimitError struct {
	Limit string // the MergeConfig field
	What  string // what is counted
	Value int64  // its value, 0 when unknown (it is only known to be above Max)
	Max   int64
}

func (e *LimitError) Error() string {
	v := ""
	if e.Value > 0 {
		v = fmt.Sprintf(" %d,", e.Value)
	}
	return fmt.Sprintf("%s:%s above the limit of %d (%s); select fewer or smaller profiles or raise the limit", e.What, v, e.Max, e.Limit)
}

// Merge reads inputs one at a time and merges them with profile.Merge, holding at
// most cfg.Batch parsed profiles besides the running result. Every input must have
// the sample types (type and unit), the period type and, where sidecars or names
// say it, the profile type of the first; an error names the two files and what differs. A corrupt, truncated or empty file is an error naming it.
func Merge(ctx context.Context, inputs []Input, cfg MergeConfig) (*Merged, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("merge config: %w", err)
	}
	if len(inputs) == 0 {
		return nil, errors.New("merge: no profiles")
	}
	if len(inputs) > cfg.MaxInputs {
		return nil, &LimitError{Limit: "MaxInputs", Value: int64(len(inputs)), Max: int64(cfg.MaxInputs), What: "profiles selected"}
	}
	var (
		acc       *profile.Profile
		first     *profile.Profile
		firstPath string
		firstType string // the first input's type from its sidecar or name
		batch     []*profile.Profile
		res       = &Merged{}
		total     int64
	)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		srcs := batch
		if acc != nil {
			srcs = append([]*profile.Profile{acc}, batch...)
		}
		m, err := profile.Merge(srcs)
		if err != nil {
			return fmt.Errorf("merge: %w", err)
		}
		clear(batch) // drop the merged profiles for the collector
		acc, batch = m, batch[:0]
		if n := len(acc.Sample); n > cfg.MaxSamples {
			return &LimitError{Limit: "MaxSamples", Value: int64(n), Max: int64(cfg.MaxSamples),
				What: fmt.Sprintf("merged profile samples after %d of %d profiles", res.Inputs, len(inputs))}
		}
		return nil
	}
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		p, size, err := readProfile(ctx, in, cfg.MaxFileBytes)
		if err != nil {
			return nil, err
		}
		if total += size; total > cfg.MaxTotalBytes {
			return nil, &LimitError{Limit: "MaxTotalBytes", Value: total, Max: cfg.MaxTotalBytes,
				What: fmt.Sprintf("bytes of profiles read after %d of %d", i+1, len(inputs))}
		}
		if first == nil {
			// Keep the first profile's shape for the checks, not its samples.
			first, firstPath, firstType = &profile.Profile{SampleType: p.SampleType, PeriodType: p.PeriodType}, in.Path, in.Type
			res.Type = in.Type
			if res.Type == "" {
				res.Type = TypeOf(p)
			}
		} else if err := compatible(firstPath, first, in.Path, p); err != nil {
			return nil, err
		} else if in.Type != "" && firstType != "" && in.Type != firstType {
			// heap and allocs (or mutex and block) share sample types but not meaning.
			return nil, fmt.Errorf("%w %s with %s: profile types differ: %s is %s, %s is %s",
				ErrIncompatible, in.Path, firstPath, in.Path, in.Type, firstPath, firstType)
		}
		d := time.Duration(p.DurationNanos)
		if d <= 0 {
			d = in.Duration
		}
		res.Duration += d
		res.Inputs++
		batch = append(batch, p)
		if len(batch) >= cfg.Batch {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if cfg.Progress != nil {
			cfg.Progress(i+1, len(inputs))
		}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	res.Profile = acc
	return res, nil
}

// ErrIncompatible starts the errors of profiles that cannot be merged or compared.
var ErrIncompatible = errors.New("cannot merge")

// compatible reports, naming both files, how b's sample or period types differ from a's.
func compatible(aPath string, a *profile.Profile, bPath string, b *profile.Profile) error {
	if vt, wt := valueTypes(a.SampleType), valueTypes(b.SampleType); vt != wt {
		return fmt.Errorf("%w %s with %s: sample types differ: %s has %s, %s has %s",
			ErrIncompatible, bPath, aPath, bPath, wt, aPath, vt)
	}
	pa, pb := "none", "none"
	if a.PeriodType != nil {
		pa = valueTypes([]*profile.ValueType{a.PeriodType})
	}
	if b.PeriodType != nil {
		pb = valueTypes([]*profile.ValueType{b.PeriodType})
	}
	if pa != pb {
		return fmt.Errorf("%w %s with %s: period types differ: %s has %s, %s has %s",
			ErrIncompatible, bPath, aPath, bPath, pb, aPath, pa)
	}
	return nil
}

// valueTypes renders [alloc_objects/count alloc_space/bytes].
func valueTypes(vs []*profile.ValueType) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = v.Type + "/" + v.Unit
	}
	return "[" + strings.Join(parts, " ") + "]"
}
