//go:build linux

package bpf

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
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
func busyProcess(t *testing.T) uint32 {
	t.Helper()
	cmd := exec.Command("sh", "-c", "while :; do :; done")
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting busy loop: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return uint32(cmd.Process.Pid)
}

// cpuTime returns the CPU time (user + system) process pid has used so far.
func cpuTime(t *testing.T, pid uint32) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatalf("reading CPU time: %v", err)
	}
	// Fields after "(comm) ": state is field 3, utime 14, stime 15 (proc(5)).
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	utime, err1 := strconv.ParseUint(fields[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(fields[15-3], 10, 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("parsing /proc/%d/stat: %v %v", pid, err1, err2)
	}
	const clkTck = 100 // USER_HZ on every Linux architecture kprof targets
	return time.Duration(utime+stime) * time.Second / clkTck
}

// waitCPU waits until process pid has used d of CPU time since it started, so that
// sample counts do not depend on how loaded the machine is.
func waitCPU(t *testing.T, pid uint32, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * d)
	for cpuTime(t, pid) < d {
		if time.Now().After(deadline) {
			t.Fatalf("process %d used less than %s of CPU in %s", pid, d, 20*d)
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
