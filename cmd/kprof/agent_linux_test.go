//go:build linux

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"
	"github.com/kprof/kprof/internal/testenv"
)

// `kprof agent` out of the box, as the DaemonSet runs it: an empty config
// directory runs the embedded default (logged as such), and the perf.data
// consumer leaves a file that perf reads, naming the process that burned CPU.
func TestAgentWithAnEmptyConfigDirRunsTheDefaultAndWritesPerfData(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root (CAP_BPF and CAP_PERFMON) to load the eBPF sampler: run make test as root")
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Fatalf("perf not installed (hack/install-perf.sh): %v", err)
	}
	agenttest.BusyProcess(t)
	configDir, out := t.TempDir(), t.TempDir()
	cmd := newAgentCmd()
	logs := &testenv.SyncBuffer{}
	cmd.SetArgs([]string{"--config-dir", configDir, "--no-cluster", "--node-name", "test-node",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--recorder-bind-address", "0", "--enable-debug-consumer=false",
		"--enable-profiling-perfdata", "--profiling-perfdata-path", out,
		// The final interval is symbolized on shutdown; on a loaded CI machine that
		// took longer than the 20 s default, which drops it and exits 1.
		"--shutdown-timeout", "2m"})
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(logs)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx) }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			cancel()
			<-done
		}
	})

	// The consumer opens its file (a hidden temporary until it is finished)
	// with the first profile that has samples: the default's first 10s
	// interval. The wait polls; it is long for a loaded CI machine, where the
	// agent symbolizes that interval's samples of every process (test binaries,
	// compilers) on a small share of a CPU.
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("kprof agent exited early: %v\n%s", err, logs.String())
		default:
		}
		tmp, _ := filepath.Glob(filepath.Join(out, ".perf-*.data.tmp*"))
		return len(tmp) > 0, "no perf.data file opened in " + out + "; logs:\n" + logs.String()
	})
	if l := logs.String(); !strings.Contains(l, "running the embedded default") || !strings.Contains(l, `"name":"default-cpu"`) {
		t.Errorf("the logs do not say the embedded default runs:\n%s", l)
	}
	cancel()
	stopped = true
	if err := <-done; err != nil {
		t.Fatalf("kprof agent: %v\n%s", err, logs.String())
	}

	files, _ := filepath.Glob(filepath.Join(out, "perf-*.data"))
	if len(files) != 1 {
		t.Fatalf("perf.data files %v in %s after shutdown, want 1", files, out)
	}
	var stdout, stderr bytes.Buffer
	report := exec.Command(perf, "report", "-i", files[0], "--stdio", "--no-children", "--sort", "comm")
	report.Stdout, report.Stderr = &stdout, &stderr
	if err := report.Run(); err != nil {
		t.Fatalf("perf report -i %s: %v\n%s", files[0], err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "sh") {
		t.Errorf("perf report of %s does not name the burner (sh):\n%.2000s", files[0], stdout.String())
	}
	var evlist bytes.Buffer
	ev := exec.Command(perf, "evlist", "-F", "-i", files[0])
	ev.Stdout, ev.Stderr = &evlist, &evlist
	if err := ev.Run(); err != nil {
		t.Fatalf("perf evlist -i %s: %v\n%s", files[0], err, evlist.String())
	}
	if got := evlist.String(); !strings.Contains(got, "cpu-clock: sample_freq=19") {
		t.Errorf("perf evlist -F of %s = %q, want cpu-clock at 19 Hz (the default)", files[0], got)
	}
}
