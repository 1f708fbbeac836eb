package profdiff

import (
	"fmt"
	"io"
	"math"
	"strings"
	"text/tabwriter"
)

// WriteReport prints the summary of d and the n functions that grew and shrank
// most, ordered by flat change (or cumulative with byCum), each with its flat and
// cumulative values in base and target.
func WriteReport(w io.Writer, d *Diff, n int, byCum bool) error {
	val, delta := d.Value, d.Change
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n", d.Summary())
	fmt.Fprintf(&b, "total: base %s, target %s, change %s\n", val(d.BaseTotal), val(d.TargetTotal), delta(d.TargetTotal-d.BaseTotal))
	order := "flat"
	if byCum {
		order = "cumulative"
	}
	for _, sec := range []struct {
		title string
		funcs []FuncDelta
	}{
		{"grew most", d.Grew(n, byCum)},
		{"shrank most", d.Shrank(n, byCum)},
	} {
		fmt.Fprintf(&b, "\n%s (by %s change):\n", sec.title, order)
		if len(sec.funcs) == 0 {
			b.WriteString("  (none)\n")
			continue
		}
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "FLAT CHANGE\tFLAT BASE\tFLAT TARGET\tCUM CHANGE\tCUM BASE\tCUM TARGET\t\t")
		for _, f := range sec.funcs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\t%s\n", delta(f.Flat()), val(f.BaseFlat), val(f.TargetFlat),
				delta(f.Cum()), val(f.BaseCum), val(f.TargetCum), f.Name)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary names the compared value, the normalisation and both sets:
// "cpu/nanoseconds, per second (base: 2 profiles, 2s recorded; target: 1 profile, 1s recorded)".
func (d *Diff) Summary() string {
	return fmt.Sprintf("%s/%s, %s (base: %s; target: %s)", d.SampleType.Type, d.SampleType.Unit, d.Norm.Rule,
		describeSet(d.Base), describeSet(d.Target))
}

// Value renders a normalised value with its unit and rule: "1.2s/s", "3MiB/profile".
func (d *Diff) Value(v float64) string {
	per := "/s"
	if d.Norm.Rule == PerProfile {
		per = "/profile"
	}
	return formatValue(v, d.SampleType.Unit) + per
}

// Change renders a change as Value does, with a "+" when it grew.
func (d *Diff) Change(v float64) string {
	s := d.Value(v)
	if v > 0 && s[0] != '0' {
		s = "+" + s
	}
	return s
}

func describeSet(m *Merged) string {
	word := "profiles"
	if m.Inputs == 1 {
		word = "profile"
	}
	return fmt.Sprintf("%d %s, %s recorded", m.Inputs, word, durationText(m.Duration))
}

// formatValue renders v in unit with a readable scale: nanoseconds as s/ms/µs,
// bytes as GiB/MiB/KiB/B, anything else as a number.
func formatValue(v float64, unit string) string {
	a := math.Abs(v)
	if a < 0.0005 {
		return "0"
	}
	switch unit {
	case "nanoseconds":
		switch {
		case a >= 1e9:
			return trim(v/1e9) + "s"
		case a >= 1e6:
			return trim(v/1e6) + "ms"
		case a >= 1e3:
			return trim(v/1e3) + "µs"
		}
		return trim(v) + "ns"
	case "bytes":
		switch {
		case a >= 1<<30:
			return trim(v/(1<<30)) + "GiB"
		case a >= 1<<20:
			return trim(v/(1<<20)) + "MiB"
		case a >= 1<<10:
			return trim(v/(1<<10)) + "KiB"
		}
		return trim(v) + "B"
	}
	return trim(v)
}

// trim renders v with up to 3 significant decimals and no trailing zeros.
func trim(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		s = "0"
	}
	return s
}
