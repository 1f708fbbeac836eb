package profdiff

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/capture"
)

const spikeFunc = "github.com/kprof/kprof/examples/sample-app/app.burnCPU"

func mergeDir(t *testing.T, dir, typ string) *Merged {
	t.Helper()
	inputs, err := Select([]string{dir}, typ, 0)
	if err != nil {
		t.Fatalf("Select %s: %v", dir, err)
	}
	m, err := Merge(t.Context(), inputs, MergeConfig{})
	if err != nil {
		t.Fatalf("Merge %s: %v", dir, err)
	}
	return m
}

func saveProfile(t *testing.T, p *profile.Profile, path string) {
	t.Helper()
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pprofTopFlat returns the flat value column of fn's line in `go tool pprof -top` output.
func pprofTopFlat(t *testing.T, top, fn string) string {
	t.Helper()
	for _, line := range strings.Split(top, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[len(f)-1] == fn {
			return f[0]
		}
	}
	t.Fatalf("go tool pprof -top does not list %s:\n%s", fn, top)
	return ""
}

func TestDiffOfASpikeAgainstItsBaselineNamesTheSpikeFunctionAsGrown(t *testing.T) {
	s := startSampleApp(t)
	baseDir, targetDir := t.TempDir(), t.TempDir()
	// Baseline: 2 s of the background load only. Spike: 3 s during /load with 2
	// workers, so the two recordings differ in length as well as in load.
	s.capture(t, baseDir, 2*time.Second, capture.TypeCPU)
	s.startLoad(t, "cpu=20s&workers=2")
	s.capture(t, targetDir, 3*time.Second, capture.TypeCPU)

	base, target := mergeDir(t, baseDir, "cpu"), mergeDir(t, targetDir, "cpu")
	d, err := Compare(base, target, "")
	if err != nil {
		t.Fatalf("Compare: %v", err)
	}
	// The divisors are the recorded durations (duration_nanos): about the asked
	// ones, later by however long a loaded machine took to stop the profile, or a
	// few milliseconds short (Go's runtime times the profile from its own start,
	// after the handler's timer: 2.996 s was recorded for 3 s on a loaded machine).
	if d.Norm.Rule != PerSecond || d.Norm.BaseDivisor != time.Duration(base.Profile.DurationNanos).Seconds() ||
		d.Norm.TargetDivisor != time.Duration(target.Profile.DurationNanos).Seconds() ||
		d.Norm.BaseDivisor < 1.95 || d.Norm.TargetDivisor < 2.95 {
		t.Fatalf("normalisation %+v, want per second over the recorded %s and %s", d.Norm,
			time.Duration(base.Profile.DurationNanos), time.Duration(target.Profile.DurationNanos))
	}
	if d.SampleType.Type != "cpu" {
		t.Fatalf("compared %s, want cpu (the default sample type)", d.SampleType.Type)
	}
	for _, byCum := range []bool{false, true} {
		grew := d.Grew(5, byCum)
		if !containsFunc(grew, spikeFunc) {
			t.Fatalf("Grew(byCum=%v) = %v, want %s among them", byCum, grew, spikeFunc)
		}
	}
	// Most of the growth is below the spike's function. (Its own flat value is not
	// always the largest: on a loaded machine many of its samples land in
	// runtime.asyncPreempt, which preempts its loop.)
	var spike FuncDelta
	for _, f := range d.Funcs {
		if f.Name == spikeFunc {
			spike = f
		}
	}
	if growth := d.TargetTotal - d.BaseTotal; growth <= 0 || spike.Cum() < growth/2 || spike.Flat() <= 0 {
		t.Fatalf("%s: flat change %v, cumulative change %v, want both positive and the latter at least half the total growth %v",
			spikeFunc, spike.Flat(), spike.Cum(), growth)
	}
	var report bytes.Buffer
	if err := WriteReport(&report, d, 5, false); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", report.String())
	grewPart, _, _ := strings.Cut(report.String(), "shrank most")
	if !regexp.MustCompile(`\+[0-9.]+m?s/s .*` + regexp.QuoteMeta(spikeFunc)).MatchString(grewPart) {
		t.Fatalf("the report's grew section does not show %s with a positive change:\n%s", spikeFunc, report.String())
	}

	// The written profiles: pprof's own -diff_base of the normalised base and the
	// target, and the single diff profile, both show the spike function grown.
	dir := t.TempDir()
	baseOut, targetOut, diffOut := filepath.Join(dir, "base.pb.gz"), filepath.Join(dir, "target.pb.gz"), filepath.Join(dir, "diff.pb.gz")
	saveProfile(t, d.NormalisedBase(), baseOut)
	saveProfile(t, target.Profile, targetOut)
	dp, err := d.Profile()
	if err != nil {
		t.Fatal(err)
	}
	saveProfile(t, dp, diffOut)
	viaDiffBase := goToolPprof(t, "-top", "-diff_base", baseOut, targetOut)
	viaDiffFile := goToolPprof(t, "-top", diffOut)
	for name, out := range map[string]string{"-diff_base base target": viaDiffBase, "the diff profile": viaDiffFile} {
		flat := pprofTopFlat(t, out, spikeFunc)
		if strings.HasPrefix(flat, "-") || flat == "0" {
			t.Errorf("go tool pprof -top %s: %s flat %s, want it grown:\n%s", name, spikeFunc, flat, out)
		}
	}
	if a, b := pprofTopFlat(t, viaDiffBase, spikeFunc), pprofTopFlat(t, viaDiffFile, spikeFunc); a != b {
		t.Errorf("%s flat: %s by -diff_base, %s in the diff profile; want the same", spikeFunc, a, b)
	}
}

func containsFunc(fs []FuncDelta, name string) bool {
	for _, f := range fs {
		if f.Name == name {
			return true
		}
	}
	return false
}

// A set compared with itself merged twice must show no change: the merge doubles
// both the values and the recorded time (CPU) or the profile count (heap).
func TestDiffNormalisesDurationAndProfileCount(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	s.capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap)
	for _, tc := range []struct {
		typ  string
		rule string
	}{
		{"cpu", PerSecond},
		{"heap", PerProfile},
	} {
		t.Run(tc.typ+" is compared "+tc.rule, func(t *testing.T) {
			inputs, err := Select([]string{dir}, tc.typ, 0)
			if err != nil {
				t.Fatal(err)
			}
			one, err := Merge(t.Context(), inputs, MergeConfig{})
			if err != nil {
				t.Fatal(err)
			}
			two, err := Merge(t.Context(), append(inputs, inputs...), MergeConfig{})
			if err != nil {
				t.Fatal(err)
			}
			d, err := Compare(one, two, "")
			if err != nil {
				t.Fatal(err)
			}
			if d.Norm.Rule != tc.rule {
				t.Fatalf("rule %q, want %q", d.Norm.Rule, tc.rule)
			}
			if d.TargetTotal == 0 || math.Abs(d.TargetTotal-d.BaseTotal) > 1e-9*d.TargetTotal {
				t.Fatalf("totals base %v target %v, want equal and non-zero", d.BaseTotal, d.TargetTotal)
			}
			if g, s := d.Grew(1, true), d.Shrank(1, true); len(g)+len(s) != 0 {
				t.Fatalf("a profile against itself twice grew %v and shrank %v, want no change", g, s)
			}
		})
	}
}

func TestCompareRefusesProfilesOfDifferentTypes(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	s.capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap)
	_, err := Compare(mergeDir(t, dir, "cpu"), mergeDir(t, dir, "heap"), "")
	if err == nil || !strings.Contains(err.Error(), "sample types differ") || !strings.Contains(err.Error(), "cpu/nanoseconds") {
		t.Fatalf("Compare(cpu, heap) = %v, want an error naming the differing sample types", err)
	}
	_, err = Compare(mergeDir(t, dir, "heap"), mergeDir(t, dir, "heap"), "no_such")
	if err == nil || !strings.Contains(err.Error(), `"no_such"`) || !strings.Contains(err.Error(), "inuse_space") {
		t.Fatalf("Compare with sample index no_such = %v, want an error listing the sample types", err)
	}
}
