package profdiff

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/pprof/profile"
)

// The normalisation rules of Compare.
const (
	// PerSecond divides values by the recorded seconds: CPU (and wall-clock) profiles,
	// whose values grow with the length of the recording.
	PerSecond = "per second"
	// PerProfile divides values by the number of merged profiles: every other type
	// (heap, goroutine, mutex, ...), whose values are a state or a running total at
	// capture time, so the merge of n profiles is n times one profile.
	PerProfile = "per profile"
)

// Normalisation says how a base and a target were made comparable.
type Normalisation struct {
	Rule string // PerSecond or PerProfile
	// BaseDivisor and TargetDivisor are the seconds or profile counts values are divided by.
	BaseDivisor, TargetDivisor float64
}

// BaseScale is the factor that brings base values to the target's scale (what the
// written diff profile multiplies the base by): TargetDivisor / BaseDivisor.
func (n Normalisation) BaseScale() float64 { return n.TargetDivisor / n.BaseDivisor }

// Normalise picks the rule for base and target: PerSecond when both are time-sampled
// (period type cpu or wall) and both have a recorded duration, else PerProfile.
func Normalise(base, target *Merged) Normalisation {
	if timeSampled(base.Profile) && timeSampled(target.Profile) && base.Duration > 0 && target.Duration > 0 {
		return Normalisation{Rule: PerSecond, BaseDivisor: base.Duration.Seconds(), TargetDivisor: target.Duration.Seconds()}
	}
	return Normalisation{Rule: PerProfile, BaseDivisor: float64(max(base.Inputs, 1)), TargetDivisor: float64(max(target.Inputs, 1))}
}

func timeSampled(p *profile.Profile) bool {
	if p.PeriodType != nil && (p.PeriodType.Type == "cpu" || p.PeriodType.Type == "wall") {
		return true
	}
	return slices.ContainsFunc(p.SampleType, func(v *profile.ValueType) bool { return v.Type == "cpu" && v.Unit == "nanoseconds" })
}

// FuncDelta is one function's normalised values in base and target.
type FuncDelta struct {
	Name                 string
	BaseFlat, TargetFlat float64
	BaseCum, TargetCum   float64
}

// Flat is the change of the function's own value (target - base).
func (f FuncDelta) Flat() float64 { return f.TargetFlat - f.BaseFlat }

// Cum is the change of the value of the function and everything it calls.
func (f FuncDelta) Cum() float64 { return f.TargetCum - f.BaseCum }

// Diff is the comparison of a base and a target, per function.
type Diff struct {
	// SampleType is the compared value (cpu/nanoseconds, inuse_space/bytes, ...).
	SampleType             profile.ValueType
	Norm                   Normalisation
	Base, Target           *Merged
	BaseTotal, TargetTotal float64
	// Funcs holds every function seen in either, in no particular order.
	Funcs []FuncDelta
}

// Compare compares target with base on the sample type named sampleIndex (the
// profiles' default, as pprof picks it, when empty), after normalising both (see
// Normalise). Base and target must have the same sample types.
func Compare(base, target *Merged, sampleIndex string) (*Diff, error) {
	if base == nil || target == nil || base.Profile == nil || target.Profile == nil {
		return nil, errors.New("compare: base and target are required")
	}
	if err := compatible("the base", base.Profile, "the target", target.Profile); err != nil {
		return nil, err
	}
	idx, err := sampleIndexOf(target.Profile, sampleIndex)
	if err != nil {
		return nil, err
	}
	d := &Diff{SampleType: *target.Profile.SampleType[idx], Norm: Normalise(base, target), Base: base, Target: target}
	byName := map[string]*FuncDelta{}
	get := func(name string) *FuncDelta {
		f := byName[name]
		if f == nil {
			f = &FuncDelta{Name: name}
			byName[name] = f
		}
		return f
	}
	d.BaseTotal = accumulate(base.Profile, idx, d.Norm.BaseDivisor, get, true)
	d.TargetTotal = accumulate(target.Profile, idx, d.Norm.TargetDivisor, get, false)
	d.Funcs = make([]FuncDelta, 0, len(byName))
	for _, f := range byName {
		d.Funcs = append(d.Funcs, *f)
	}
	return d, nil
}

// sampleIndexOf finds the sample type named name, or the default: DefaultSampleType,
// else the last sample type (pprof's rule).
func sampleIndexOf(p *profile.Profile, name string) (int, error) {
	if name == "" {
		name = p.DefaultSampleType
	}
	if name == "" {
		return len(p.SampleType) - 1, nil
	}
	for i, st := range p.SampleType {
		if st.Type == name {
			return i, nil
		}
	}
	names := make([]string, len(p.SampleType))
	for i, st := range p.SampleType {
		names[i] = st.Type
	}
	return 0, fmt.Errorf("sample type %q is not in the profiles (they have %v)", name, names)
}

// accumulate adds p's values of sample type idx, divided by div, to the flat value
// of each sample's leaf function and the cum value of every function on its stack
// (once per stack, however often it recurses). It returns the normalised total.
func accumulate(p *profile.Profile, idx int, div float64, get func(string) *FuncDelta, base bool) float64 {
	total := 0.0
	seen := map[string]bool{}
	for _, s := range p.Sample {
		v := float64(s.Value[idx]) / div
		if v == 0 {
			continue
		}
		total += v
		clear(seen)
		for li, loc := range s.Location {
			names := locationNames(loc)
			for ni, name := range names {
				f := get(name)
				if li == 0 && ni == 0 {
					if base {
						f.BaseFlat += v
					} else {
						f.TargetFlat += v
					}
				}
				if seen[name] {
					continue
				}
				seen[name] = true
				if base {
					f.BaseCum += v
				} else {
					f.TargetCum += v
				}
			}
		}
	}
	return total
}

// locationNames are the functions of a location, innermost (inlined) first; an
// unsymbolised location is named by its address.
func locationNames(loc *profile.Location) []string {
	if len(loc.Line) == 0 {
		return []string{fmt.Sprintf("0x%x", loc.Address)}
	}
	names := make([]string, 0, len(loc.Line))
	for _, l := range loc.Line {
		if l.Function != nil && l.Function.Name != "" {
			names = append(names, l.Function.Name)
		} else {
			names = append(names, fmt.Sprintf("0x%x", loc.Address))
		}
	}
	return names
}

// Grew returns the n functions whose value grew most, by flat value (byCum false)
// or cumulative value, largest first; only functions that grew.
func (d *Diff) Grew(n int, byCum bool) []FuncDelta {
	return d.top(n, byCum, 1)
}

// Shrank returns the n functions whose value shrank most, largest drop first.
func (d *Diff) Shrank(n int, byCum bool) []FuncDelta {
	return d.top(n, byCum, -1)
}

func (d *Diff) top(n int, byCum bool, sign float64) []FuncDelta {
	key := func(f FuncDelta) (float64, float64) {
		if byCum {
			return sign * f.Cum(), sign * f.Flat()
		}
		return sign * f.Flat(), sign * f.Cum()
	}
	var out []FuncDelta
	for _, f := range d.Funcs {
		if k, _ := key(f); k > 0 {
			out = append(out, f)
		}
	}
	slices.SortFunc(out, func(a, b FuncDelta) int {
		ka, ka2 := key(a)
		kb, kb2 := key(b)
		return cmp.Or(cmp.Compare(kb, ka), cmp.Compare(kb2, ka2), cmp.Compare(a.Name, b.Name))
	})
	if n >= 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// NormalisedBase returns a copy of the base scaled to the target's scale
// (Norm.BaseScale), so that `go tool pprof -diff_base BASE TARGET` of it and the
// target compares like with like. Values are rounded to integers, as pprof stores them.
func (d *Diff) NormalisedBase() *profile.Profile {
	b := d.Base.Profile.Copy()
	b.Scale(d.Norm.BaseScale())
	b.DurationNanos = d.Target.Profile.DurationNanos
	return b
}

// Profile returns one profile holding the target and the normalised base negated and
// labelled pprof::base=true: what `go tool pprof -diff_base` builds internally, so
// `go tool pprof -top FILE` (or -http) of it shows the difference, with pprof's own
// diff colouring.
func (d *Diff) Profile() (*profile.Profile, error) {
	b := d.NormalisedBase()
	b.Scale(-1)
	for _, s := range b.Sample {
		if s.Label == nil {
			s.Label = map[string][]string{}
		}
		s.Label["pprof::base"] = []string{"true"}
	}
	t := d.Target.Profile.Copy()
	m, err := profile.Merge([]*profile.Profile{b, t})
	if err != nil {
		return nil, fmt.Errorf("diff profile: %w", err)
	}
	m.DurationNanos = t.DurationNanos
	m.TimeNanos = t.TimeNanos
	return m, nil
}

// durationText renders a recorded duration for the summary ("30s", "unknown").
func durationText(d time.Duration) string {
	if d <= 0 {
		return "unknown"
	}
	return d.Round(time.Millisecond).String()
}
