package profdiff

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/config/check"
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
	check.Default(&c.MaxInputs, DefaultMaxInputs)
	check.Default(&c.MaxFileBytes, DefaultMaxFileBytes)
	check.Default(&c.MaxSamples, DefaultMaxSamples)
	check.Default(&c.MaxTotalBytes, DefaultMaxTotalBytes)
	check.Default(&c.Batch, DefaultBatch)
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
	m := &merger{cfg: cfg, inputs: len(inputs)}
	for i, in := range inputs {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("merge: %w", err)
		}
		if err := m.add(ctx, i, in); err != nil {
			return nil, err
		}
		if cfg.Progress != nil {
			cfg.Progress(i+1, len(inputs))
		}
	}
	if err := m.flush(); err != nil {
		return nil, err
	}
	m.res.Profile = m.acc
	return &m.res, nil
}

// merger is the state of one Merge: the running result, the parsed profiles
// not merged into it yet, and the shape of the first input, which every other
// input must have.
type merger struct {
	cfg       MergeConfig
	inputs    int // how many Merge was given
	acc       *profile.Profile
	first     *profile.Profile
	firstPath string
	firstType string // the first input's type from its sidecar or name
	batch     []*profile.Profile
	res       Merged
	total     int64 // bytes read
}

// add reads input i, checks it against the first, and merges the batch when
// it is full.
func (m *merger) add(ctx context.Context, i int, in Input) error {
	p, size, err := readProfile(ctx, in, m.cfg.MaxFileBytes)
	if err != nil {
		return err
	}
	if m.total += size; m.total > m.cfg.MaxTotalBytes {
		return &LimitError{Limit: "MaxTotalBytes", Value: m.total, Max: m.cfg.MaxTotalBytes,
			What: fmt.Sprintf("bytes of profiles read after %d of %d", i+1, m.inputs)}
	}
	if err := m.match(in, p); err != nil {
		return err
	}
	d := time.Duration(p.DurationNanos)
	if d <= 0 {
		d = in.Duration
	}
	m.res.Duration += d
	m.res.Inputs++
	m.batch = append(m.batch, p)
	if len(m.batch) >= m.cfg.Batch {
		return m.flush()
	}
	return nil
}

// match keeps the shape and type of the first input, and checks every later
// input against them.
func (m *merger) match(in Input, p *profile.Profile) error {
	if m.first == nil {
		// Keep the first profile's shape for the checks, not its samples.
		m.first, m.firstPath, m.firstType = &profile.Profile{SampleType: p.SampleType, PeriodType: p.PeriodType}, in.Path, in.Type
		m.res.Type = in.Type
		if m.res.Type == "" {
			m.res.Type = TypeOf(p)
		}
		return nil
	}
	if err := compatible(m.firstPath, m.first, in.Path, p); err != nil {
		return err
	}
	if in.Type != "" && m.firstType != "" && in.Type != m.firstType {
		// heap and allocs (or mutex and block) share sample types but not meaning.
		return fmt.Errorf("%w %s with %s: profile types differ: %s is %s, %s is %s",
			ErrIncompatible, in.Path, m.firstPath, in.Path, in.Type, m.firstPath, m.firstType)
	}
	return nil
}

// flush merges the batch into the running result.
func (m *merger) flush() error {
	if len(m.batch) == 0 {
		return nil
	}
	srcs := m.batch
	if m.acc != nil {
		srcs = append([]*profile.Profile{m.acc}, m.batch...)
	}
	merged, err := profile.Merge(srcs)
	if err != nil {
		return fmt.Errorf("merge: %w", err)
	}
	clear(m.batch) // drop the merged profiles for the collector
	m.acc, m.batch = merged, m.batch[:0]
	if n := len(m.acc.Sample); n > m.cfg.MaxSamples {
		return &LimitError{Limit: "MaxSamples", Value: int64(n), Max: int64(m.cfg.MaxSamples),
			What: fmt.Sprintf("merged profile samples after %d of %d profiles", m.res.Inputs, m.inputs)}
	}
	return nil
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
