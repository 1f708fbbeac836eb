//go:build linux

package agent

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
)

// The agent with --enable-profiling-perfdata, on a real profiling run, leaves perf.data
// files that perf reads without complaint, naming the process that burned the CPU.
func TestAgentWritesPerfDataThatPerfReads(t *testing.T) {
	requireBPF(t)
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Fatalf("perf not installed (hack/install-perf.sh): %v", err)
	}
	burner := startBurner(t)
	dir, out := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(dir, "cpu.yaml"), plainConfig("cpu", 1, "cpu-clock"))
	capture := newCaptureConsumer()
	a, err := New(Config{
		ConfigDir: dir, NoCluster: true, MetricsAddr: "0", HealthAddr: "0",
		EnablePerfData: true, PerfDataPath: out,
		Consumers: []router.Consumer{capture},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Registry:  prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	capture.waitEvent(t, 30*time.Second, "with the burner's samples", nil, func(ev *profile.Event) bool {
		for _, s := range ev.Samples {
			if s.PID == burner && s.Count > 0 {
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	files, _ := filepath.Glob(filepath.Join(out, "perf-*.data"))
	if len(files) == 0 {
		t.Fatalf("no perf-*.data file in %s", out)
	}
	for _, f := range files {
		var stdout, stderr bytes.Buffer
		cmd := exec.Command(perf, "report", "-i", f, "--stdio", "--no-children", "--sort", "comm")
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("perf report -i %s: %v\n%s", f, err, stderr.String())
		}
		for _, l := range strings.Split(stderr.String(), "\n") {
			if low := strings.ToLower(l); strings.Contains(low, "warning") || strings.Contains(low, "corrupt") || strings.Contains(low, "invalid") {
				t.Errorf("perf report -i %s complains: %s\n%s", f, l, stderr.String())
			}
		}
		if !strings.Contains(stdout.String(), "sh") {
			t.Errorf("perf report of %s does not name the burner (sh):\n%.2000s", f, stdout.String())
		}
	}
}
