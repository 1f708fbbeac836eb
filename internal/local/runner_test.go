package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	iofs "io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/testenv"
)

// startSampleApp serves the sample app, with its background CPU load, on a random
// loopback port and returns its pprof prefix.
func startSampleApp(t *testing.T) string {
	t.Helper()
	return testenv.ServeSampleApp(t) + "/debug/pprof"
}

// closedPortURL returns a pprof URL on a loopback port nothing listens on.
func closedPortURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "http://" + addr + "/debug/pprof"
}

func writeConfig(t *testing.T, yaml string) Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kprof.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

// storedProfiles returns the profile files below dir by type (the suffix of their name).
func storedProfiles(t *testing.T, dir string) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if errors.Is(err, iofs.ErrNotExist) && path == dir {
			return filepath.SkipDir // not created yet
		}
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.gz") {
			return err
		}
		base := strings.TrimSuffix(filepath.Base(path), ".pb.gz")
		typ := base[strings.LastIndex(base, "_")+1:]
		out[typ] = append(out[typ], path)
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	return out
}

func parseProfileFile(t *testing.T, path string) *profile.Profile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p, err := profile.Parse(io.LimitReader(f, 64<<20))
	if err != nil {
		t.Fatalf("%s does not parse as pprof: %v", path, err)
	}
	return p
}

func TestRunOnceStoresEveryTypeAndGoToolPprofReadsThem(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to check stored profiles with go tool pprof: %v", err)
	}
	base := startSampleApp(t)
	dir := filepath.Join(t.TempDir(), "profiles")
	cfg := writeConfig(t, `
targets:
  - name: sample-app
    url: `+base+`/
    labels: {service: sample-app, env: test}
profileTypes: [cpu, heap, goroutine, allocs]
cpuProfileDurationSeconds: 1
storage:
  local: {path: `+dir+`}
`)
	var summary bytes.Buffer
	r, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Out: &summary})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	if err := r.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v", err)
	}

	files := storedProfiles(t, dir)
	for _, typ := range []string{"cpu", "heap", "goroutine", "allocs"} {
		t.Run("the "+typ+" profile is stored once, parses as pprof and has its metadata beside it", func(t *testing.T) {
			if len(files[typ]) != 1 {
				t.Fatalf("%s profiles stored: %v, want exactly one", typ, files[typ])
			}
			if p := parseProfileFile(t, files[typ][0]); len(p.SampleType) == 0 {
				t.Errorf("%s profile has no sample types", typ)
			}
			if _, err := os.Stat(files[typ][0] + fs.MetaSuffix); err != nil {
				t.Errorf("metadata of %s: %v", files[typ][0], err)
			}
			if !strings.Contains(files[typ][0], filepath.Join("local", "sample-app")) {
				t.Errorf("%s is not below local/sample-app/ (namespace/service of the default key template)", files[typ][0])
			}
		})
	}

	t.Run("go tool pprof -top lists burnCPU of the sample app in the cpu profile", func(t *testing.T) {
		if len(files["cpu"]) != 1 {
			t.Fatalf("no cpu profile stored")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", files["cpu"][0]).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof -top %s: %v\n%s", files["cpu"][0], err, out)
		}
		if !strings.Contains(string(out), "sample-app/app.burnCPU") {
			t.Fatalf("go tool pprof -top output does not list sample-app/app.burnCPU:\n%s", out)
		}
	})

	t.Run("the summary names the directory and the command to open a profile", func(t *testing.T) {
		abs, _ := filepath.Abs(dir)
		for _, want := range []string{"Stored 4 profile(s)", abs, "go tool pprof -top " + files["cpu"][0]} {
			if !strings.Contains(summary.String(), want) {
				t.Errorf("summary lacks %q:\n%s", want, summary.String())
			}
		}
	})
}

func TestRunOnceReportsFailedTargetsAndStoresTheOthers(t *testing.T) {
	base := startSampleApp(t)
	down := closedPortURL(t)
	dir := filepath.Join(t.TempDir(), "profiles")
	cfg := writeConfig(t, `
targets:
  - {name: up, url: `+base+`}
  - {name: down, url: `+down+`}
profileTypes: [heap, goroutine]
storage: {local: {path: `+dir+`}}
`)
	var summary bytes.Buffer
	r, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Out: &summary})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	err = r.Run(t.Context())
	if err == nil {
		t.Fatal("Run succeeded with an unreachable target, want an error")
	}
	// The engine logged each failure; the error names them without repeating the errors.
	for _, want := range []string{"2 of 4 captures failed", "down heap: ConnectFailed", "down goroutine: ConnectFailed"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Run error lacks %q: %v", want, err)
		}
	}
	for _, unwanted := range []string{"up ", "connection refused"} {
		if strings.Contains(err.Error(), unwanted) {
			t.Errorf("Run error has %q (a reachable target, or a failure's logged error repeated): %v", unwanted, err)
		}
	}
	var failed *CapturesFailedError
	if !errors.As(err, &failed) || len(failed.Unwrap()) != 2 || !strings.Contains(failed.Unwrap()[0].Error(), "capture down") {
		t.Errorf("Run error %#v does not carry the two failed captures' errors", err)
	}
	files := storedProfiles(t, dir)
	if len(files["heap"]) != 1 || len(files["goroutine"]) != 1 {
		t.Errorf("stored %v, want the heap and goroutine profiles of the reachable target", files)
	}
	if !strings.Contains(summary.String(), "2 capture(s) failed") {
		t.Errorf("summary does not count the failures:\n%s", summary.String())
	}
}

func TestScheduledRunStoresProfilesUntilCancelled(t *testing.T) {
	base := startSampleApp(t)
	dir := filepath.Join(t.TempDir(), "profiles")
	cfg := writeConfig(t, `
targets: [{name: sample-app, url: `+base+`}]
profileTypes: [goroutine]
onDemand: {intervalSeconds: 6}
cpuProfileDurationSeconds: 1
storage: {local: {path: `+dir+`}}
`)
	var summary bytes.Buffer
	r, err := NewRunner(RunnerConfig{File: cfg, Logger: logtest.New(t), Out: &summary})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	var runErr error
	stopped := false
	stop := func() error {
		if !stopped {
			cancel()
			runErr, stopped = <-errc, true
		}
		return runErr
	}
	t.Cleanup(func() { _ = stop() })

	// The first round starts at a random point within the first interval.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for len(storedProfiles(t, dir)["goroutine"]) == 0 {
		select {
		case err := <-errc:
			runErr, stopped = err, true
			t.Fatalf("Run returned before storing a profile: %v", err)
		case <-t.Context().Done():
			t.Fatal("no profile stored before the test deadline")
		case <-tick.C:
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run after cancel = %v, want nil", err)
	}
	if !strings.Contains(summary.String(), "go tool pprof -top ") {
		t.Errorf("summary lacks the pprof command:\n%s", summary.String())
	}
}

func TestRunnerConfigRejectsContradictions(t *testing.T) {
	disabled := false
	file := Config{Targets: []TargetConfig{{Name: "a", URL: "http://127.0.0.1:1/debug/pprof"}}}
	file.SetDefaults()
	unscheduled := file
	unscheduled.OnDemand.Enabled = &disabled
	for _, tc := range []struct {
		name string
		cfg  RunnerConfig
		want string
	}{
		{"a duration with once is rejected", RunnerConfig{File: file, Once: true, Duration: time.Minute}, "Duration: has no effect with Once"},
		{"a negative duration is rejected", RunnerConfig{File: file, Duration: -time.Second}, "Duration: must not be negative"},
		{"a scheduled run with the schedule disabled is rejected", RunnerConfig{File: unscheduled}, "onDemand.enabled is false"},
		{"an invalid file is rejected", RunnerConfig{File: Config{}}, "File: targets: at least one target is required"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewRunner(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewRunner = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	if _, err := NewRunner(RunnerConfig{File: unscheduled, Once: true}); err != nil {
		t.Errorf("NewRunner with once and the schedule disabled = %v, want nil", err)
	}
}

func TestRunOnceDrawsTheCPUProgressBarOnATerminal(t *testing.T) {
	// One at a time: the apps share this process, whose Go runtime records one CPU profile at a time.
	dir := filepath.Join(t.TempDir(), "profiles")
	cfg := writeConfig(t, `
targets:
  - {name: a, url: `+startSampleApp(t)+`}
  - {name: b, url: `+startSampleApp(t)+`}
profileTypes: [heap, cpu]
cpuProfileDurationSeconds: 1
storage: {local: {path: `+dir+`}}
limits: {maxConcurrent: 1}
`)
	var progress bytes.Buffer
	r, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Terminal: true, Progress: &progress})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	if err := r.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if files := storedProfiles(t, dir); len(files["cpu"]) != 2 || len(files["heap"]) != 2 {
		t.Fatalf("stored %v, want a heap and a cpu profile of each target", files)
	}
	// The bar of `kprof capture`, for the round's targets: drawn once heap is done,
	// ended (one newline) once both CPU profiles are in.
	if p := progress.String(); !strings.HasPrefix(p, "\rcpu (2 targets) [....................] 0s/1s") ||
		!strings.HasSuffix(p, "\x1b[K\n") || strings.Count(p, "\n") != 1 {
		t.Errorf("progress = %q, want one bar from 0s/1s ending in one newline", p)
	}
}

func TestRunOnceWithoutATerminalDrawsNoBar(t *testing.T) {
	var progress bytes.Buffer
	cfg := writeConfig(t, "targets: [{name: a, url: "+startSampleApp(t)+"}]\nprofileTypes: [cpu]\ncpuProfileDurationSeconds: 1\n"+
		"storage: {local: {path: "+filepath.Join(t.TempDir(), "p")+"}}\n")
	r, err := NewRunner(RunnerConfig{File: cfg, Once: true, Logger: logtest.New(t), Progress: &progress})
	if err != nil {
		t.Fatalf("NewRunner: %v", err)
	}
	if err := r.Run(t.Context()); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if progress.Len() != 0 {
		t.Errorf("progress = %q off a terminal, want nothing drawn", progress.String())
	}
}
