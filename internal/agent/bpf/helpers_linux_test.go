//go:build linux

package bpf

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"
)

// helperEnv makes the test binary, re-executed by a test, call Open once and print
// the error instead of running tests (see TestMain).
const helperEnv = "KPROF_BPF_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "open" {
		s, err := Open(Config{})
		if err != nil {
			fmt.Println("open error:", err)
			os.Exit(0)
		}
		_ = s.Close()
		fmt.Println("open ok")
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// requireSampling skips when this process cannot load perf_event BPF programs and
// open system-wide perf events. On kprof's machines (root with CAP_BPF and
// CAP_PERFMON) it never skips.
func requireSampling(t *testing.T) {
	t.Helper()
	caps, err := effectiveCaps()
	if err != nil {
		t.Skipf("cannot read capabilities: %v", err)
	}
	if missing := missingBPFCaps(caps); len(missing) > 0 {
		t.Skipf("needs %s (run as root, or with CAP_BPF and CAP_PERFMON)", strings.Join(missing, " and "))
	}
}

// openSampler opens a Sampler and closes it at cleanup.
func openSampler(t *testing.T, cfg Config) *Sampler {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open(%+v): %v", cfg, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// busyProcess starts a shell spinning on one CPU and returns its pid; cleanup kills it.
func busyProcess(t *testing.T) uint32 { return uint32(agenttest.BusyProcess(t)) }

// cpuTime returns the CPU time (user + system) process pid has used so far.
func cpuTime(t *testing.T, pid uint32) time.Duration { return agenttest.CPUTime(t, int(pid)) }

// waitCPU waits until process pid has used d of CPU time since it started, so that
// sample counts do not depend on how loaded the machine is (on a machine with a
// load of 40 on 2 CPUs, a process gets 5 % of one).
func waitCPU(t *testing.T, pid uint32, d time.Duration) {
	t.Helper()
	within := max(20*d, 2*time.Minute)
	deadline := time.Now().Add(within)
	for cpuTime(t, pid) < d {
		if time.Now().After(deadline) {
			t.Fatalf("process %d used less than %s of CPU in %s", pid, d, within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// drain calls Drain, fails on error, and checks the invariant that every sample
// taken was either counted or dropped for a full map.
func drain(t *testing.T, s *Sampler) ([]RawSample, Stats) {
	t.Helper()
	samples, stats, err := s.Drain()
	if err != nil {
		t.Fatalf("Drain: %v", err)
	}
	var counted uint64
	for _, smp := range samples {
		if smp.Count == 0 {
			t.Errorf("sample with count 0: %+v", smp)
		}
		counted += smp.Count
	}
	if counted+stats.MapFull != stats.Samples {
		t.Errorf("counted %d + map-full drops %d != samples taken %d", counted, stats.MapFull, stats.Samples)
	}
	return samples, stats
}

// countOf sums the counts of process tgid.
func countOf(samples []RawSample, tgid uint32) uint64 {
	var n uint64
	for _, s := range samples {
		if s.TGID == tgid {
			n += s.Count
		}
	}
	return n
}
