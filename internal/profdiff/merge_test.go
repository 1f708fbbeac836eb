package profdiff

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/capture"
)

func totals(p *profile.Profile) map[string]int64 {
	out := map[string]int64{}
	for _, s := range p.Sample {
		for i, v := range s.Value {
			out[p.SampleType[i].Type+"/"+p.SampleType[i].Unit] += v
		}
	}
	return out
}

func TestMergeOfHeapProfilesEqualsGoToolPprofProtoInTotals(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	for range 3 {
		s.capture(t, dir, time.Second, capture.TypeHeap)
	}
	files := profileFiles(t, dir)
	if len(files) != 3 {
		t.Fatalf("captured %d heap profiles, want 3: %v", len(files), files)
	}
	inputs, err := Select([]string{dir}, "heap", 0)
	if err != nil {
		t.Fatalf("Select: %v", err)
	}
	var progress []int
	got, err := Merge(t.Context(), inputs, MergeConfig{Batch: 2, Progress: func(done, total int) {
		if total != 3 {
			t.Errorf("progress total %d, want 3", total)
		}
		progress = append(progress, done)
	}})
	if err != nil {
		t.Fatalf("Merge: %v", err)
	}
	if got.Inputs != 3 || got.Type != "heap" {
		t.Fatalf("merged %d inputs of type %q, want 3 heap", got.Inputs, got.Type)
	}
	if want := []int{1, 2, 3}; !equalInts(progress, want) {
		t.Fatalf("progress calls %v, want %v", progress, want)
	}

	out := filepath.Join(t.TempDir(), "pprof.pb.gz")
	goToolPprof(t, append([]string{"-proto", "-output", out}, files...)...)
	want, err := ReadProfile(out, DefaultMaxFileBytes)
	if err != nil {
		t.Fatal(err)
	}
	gt, wt := totals(got.Profile), totals(want)
	if len(wt) == 0 || len(gt) != len(wt) {
		t.Fatalf("merged totals %v, go tool pprof -proto totals %v", gt, wt)
	}
	for k, v := range wt {
		if gt[k] != v {
			t.Errorf("%s: merged total %d, go tool pprof -proto total %d", k, gt[k], v)
		}
	}
	if gt["alloc_space/bytes"] == 0 {
		t.Errorf("merged heap profile has no allocated bytes: %v", gt)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestMergeRefusesBadInputsNamingTheFile(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	s.capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap)
	var cpu, heap string
	for _, f := range profileFiles(t, dir) {
		switch {
		case strings.HasSuffix(f, "_cpu.pb.gz"):
			cpu = f
		case strings.HasSuffix(f, "_heap.pb.gz"):
			heap = f
		}
	}
	if cpu == "" || heap == "" {
		t.Fatalf("capture stored %v, want a cpu and a heap profile", profileFiles(t, dir))
	}
	heapBytes, err := os.ReadFile(heap)
	if err != nil {
		t.Fatal(err)
	}
	bad := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(bad, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	empty := write("empty.pb.gz", nil)
	truncated := write("truncated.pb.gz", heapBytes[:len(heapBytes)/2])
	corrupt := write("corrupt.pb.gz", bytes.Repeat([]byte("not a profile "), 20))
	var bombBuf bytes.Buffer
	zw := gzip.NewWriter(&bombBuf)
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	bomb := write("bomb.pb.gz", bombBuf.Bytes())

	for _, tc := range []struct {
		name   string
		inputs []Input
		cfg    MergeConfig
		want   []string
	}{
		{"a zero-byte file is named as empty", []Input{{Path: heap}, {Path: empty}}, MergeConfig{}, []string{empty, "empty"}},
		{"a truncated file is named", []Input{{Path: heap}, {Path: truncated}}, MergeConfig{}, []string{truncated}},
		{"a file that is not a profile is named", []Input{{Path: corrupt}}, MergeConfig{}, []string{corrupt}},
		{"a cpu and a heap profile are refused with both sample type lists", []Input{{Path: cpu}, {Path: heap}}, MergeConfig{},
			[]string{cpu, heap, "sample types differ", "[samples/count cpu/nanoseconds]", "inuse_space/bytes"}},
		{"a heap and an allocs profile, alike in sample types, are refused by their types", []Input{{Path: heap, Type: "heap"}, {Path: heap, Type: "allocs"}}, MergeConfig{},
			[]string{"profile types differ", "is allocs", "is heap"}},
		{"more inputs than MaxInputs are refused before reading", []Input{{Path: heap}, {Path: heap}}, MergeConfig{MaxInputs: 1},
			[]string{"profiles selected: 2, above the limit of 1 (MaxInputs)"}},
		{"a file above MaxFileBytes is named", []Input{{Path: heap}}, MergeConfig{MaxFileBytes: 16},
			[]string{heap, "file size: %d, above the limit of 16 (MaxFileBytes)"}},
		{"a small file that inflates past MaxFileBytes times 16 is refused", []Input{{Path: bomb}}, MergeConfig{MaxFileBytes: 4096},
			[]string{bomb, "decompressed size (16× MaxFileBytes): above the limit of 65536 (MaxFileBytes)"}},
		{"a merge above MaxSamples stops with the limit", []Input{{Path: heap}, {Path: heap}}, MergeConfig{MaxSamples: 1, Batch: 1},
			[]string{"merged profile samples after 1 of 2 profiles", "above the limit of 1 (MaxSamples)"}},
		{"inputs above MaxTotalBytes stop with the limit", []Input{{Path: heap}, {Path: heap}}, MergeConfig{MaxTotalBytes: int64(len(heapBytes)) + 1},
			[]string{"bytes of profiles read after 2 of 2", "(MaxTotalBytes)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Merge(t.Context(), tc.inputs, tc.cfg)
			if err == nil {
				t.Fatal("Merge succeeded, want an error")
			}
			for _, w := range tc.want {
				if strings.Contains(w, "%d") {
					w = fmt.Sprintf(w, len(heapBytes))
				}
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var le *LimitError
			if strings.Contains(tc.name, "Max") != errors.As(err, &le) {
				t.Errorf("error %q: LimitError %v, want it for a limit", err, le)
			}
		})
	}
}
