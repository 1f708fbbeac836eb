package main

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kprof/kprof/internal/profdiff"
)

// loadSpike starts the sample app's /load CPU spike and returns once it runs.
func loadSpike(t *testing.T, pprofURL, query string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	base := strings.TrimSuffix(pprofURL, "/debug/pprof")
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/load?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /load: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("GET /load?%s: %s, first line %q, err %v", query, resp.Status, line, err)
	}
}

func TestProfilesMergeAndDiffCommands(t *testing.T) {
	app := startSampleApp(t)
	baseDir, targetDir := t.TempDir(), t.TempDir()
	for _, args := range [][]string{
		{app, "--type", "cpu,heap", "--seconds", "1", "--output", baseDir},
		{app, "--type", "heap", "--output", baseDir},
	} {
		if _, stderr, err := execute(t, newCaptureCmd(), args...); err != nil {
			t.Fatalf("kprof capture %v: %v\n%s", args, err, stderr)
		}
	}
	loadSpike(t, app, "cpu=20s&workers=2")
	if _, stderr, err := execute(t, newCaptureCmd(), app, "--type", "cpu", "--seconds", "2", "--output", targetDir); err != nil {
		t.Fatalf("kprof capture under load: %v\n%s", err, stderr)
	}

	t.Run("merge of a directory's heap profiles writes one profile of both", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "heap.pb.gz")
		stdout, stderr, err := execute(t, newProfilesCmd(), "merge", baseDir, "--type", "heap", "-o", out)
		if err != nil {
			t.Fatalf("kprof profiles merge: %v\n%s", err, stderr)
		}
		if !strings.Contains(stdout, "Merged 2 heap profile(s)") {
			t.Errorf("stdout %q does not report 2 heap profiles merged", stdout)
		}
		if strings.Contains(stderr, "\r") {
			t.Errorf("stderr, not a terminal, has a progress bar: %q", stderr)
		}
		if _, err := profdiff.ReadProfile(out, profdiff.DefaultMaxFileBytes); err != nil {
			t.Fatalf("merged output: %v", err)
		}
	})

	t.Run("diff of the spike against the baseline lists burnCPU as grown and writes a diff profile", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "diff.pb.gz")
		stdout, stderr, err := execute(t, newProfilesCmd(), "diff", "--base", baseDir, "--target", targetDir, "--type", "cpu", "--top", "5", "-o", out)
		if err != nil {
			t.Fatalf("kprof profiles diff: %v\n%s", err, stderr)
		}
		grew, _, _ := strings.Cut(stdout, "shrank most")
		if !strings.Contains(grew, "per second") || !strings.Contains(grew, spikeFunction) {
			t.Fatalf("the grew section does not list %s per second:\n%s", spikeFunction, stdout)
		}
		if _, err := os.Stat(out); err != nil {
			t.Fatalf("diff profile: %v", err)
		}
	})

	heapFiles, err := filepath.Glob(filepath.Join(baseDir, "*", "*", "*", "*_heap.pb.gz"))
	if err != nil || len(heapFiles) == 0 {
		t.Fatalf("no heap profile below %s: %v", baseDir, err)
	}
	heapFile := heapFiles[0]
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"merge without -o is refused", []string{"merge", baseDir, "--type", "heap"}, "-o/--output: required"},
		{"merge of a directory of several types without --type lists them", []string{"merge", baseDir, "-o", filepath.Join(t.TempDir(), "x")},
			"holds profiles of 2 types (cpu, heap): choose one with --type"},
		{"merge above --max-profiles names the flag", []string{"merge", baseDir, "--type", "heap", "--max-profiles", "1", "-o", filepath.Join(t.TempDir(), "x")},
			"above the limit of 1 (MaxInputs); select fewer or smaller profiles or raise the limit (flag --max-profiles)"},
		{"diff without --base is refused", []string{"diff", "--target", targetDir}, "--base: required"},
		{"diff of a heap file against cpu profiles names the differing sample types", []string{"diff", "--base", heapFile, "--target", targetDir},
			"sample types differ"},
		{"a file of another type than --type is named", []string{"diff", "--base", heapFile, "--target", targetDir, "--type", "cpu"},
			"a heap profile, not cpu (--type)"},
		{"a missing input is named", []string{"merge", filepath.Join(baseDir, "nope.pb.gz"), "-o", filepath.Join(t.TempDir(), "x")}, "nope.pb.gz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newProfilesCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof profiles %v = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

const spikeFunction = "github.com/kprof/kprof/examples/sample-app/app.burnCPU"
