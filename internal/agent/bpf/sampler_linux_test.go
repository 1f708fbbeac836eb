//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestSamplerCountsABusyProcessWithItsStacks(t *testing.T) {
	requireSampling(t)
	s := openSampler(t, Config{Event: "cpu-clock", Frequency: 99})
	if got := len(s.Config().CPUs); got == 0 {
		t.Fatal("Config().CPUs is empty: Open did not fill in the online CPUs")
	}
	pid := busyProcess(t)
	waitCPU(t, pid, 2*time.Second)
	samples, stats := drain(t, s)
	used := cpuTime(t, pid)

	// cpu-clock counts CPU time: 99 Hz × ~2 s of it is ~200 samples.
	n := countOf(samples, pid)
	if want := used.Seconds() * 99; float64(n) < want*0.5 || float64(n) > want*1.5+10 {
		t.Fatalf("busy process %d got %d samples for %s of CPU time, want ~%.0f (stats %+v)", pid, n, used, want, stats)
	}
	var withStack int
	for _, smp := range samples {
		if smp.TGID != pid {
			continue
		}
		if smp.PID != pid {
			t.Errorf("single-threaded process %d has a sample of thread %d", pid, smp.PID)
		}
		if len(smp.User) > 0 || len(smp.Kernel) > 0 {
			withStack++
		}
		for _, st := range [][]uint64{smp.User, smp.Kernel} {
			if st != nil && len(st) == 0 {
				t.Errorf("empty non-nil stack in %+v", smp)
			}
			if len(st) > MaxStackDepth {
				t.Errorf("stack of %d frames, more than %d", len(st), MaxStackDepth)
			}
		}
		for _, ip := range smp.User {
			if ip == 0 || ip >= 1<<63 {
				t.Errorf("user frame %#x is not a user-space address", ip)
			}
		}
	}
	if withStack == 0 {
		t.Errorf("no sample of process %d has a stack", pid)
	}
	for _, smp := range samples {
		if smp.TGID == 0 {
			t.Errorf("idle task sampled although IncludeIdle is false: %+v", smp)
			break
		}
	}
}

func TestDrainReturnsOnlySamplesSinceThePreviousDrain(t *testing.T) {
	requireSampling(t)
	s := openSampler(t, Config{})
	pid := busyProcess(t)
	waitCPU(t, pid, time.Second)

	first, _ := drain(t, s)
	second, _ := drain(t, s) // right after: only what ran during the first Drain
	n1, n2 := countOf(first, pid), countOf(second, pid)
	if n1 < 50 {
		t.Fatalf("first Drain: %d samples of the busy process for 1 s of its CPU time, want > 50", n1)
	}
	if n2 > n1/4 {
		t.Errorf("second Drain right after the first returned %d samples of the busy process (first: %d): samples counted twice", n2, n1)
	}
}

func TestRapidDrainsLoseNothing(t *testing.T) {
	requireSampling(t)
	s := openSampler(t, Config{Frequency: 99})
	pid := busyProcess(t)
	cpu0 := cpuTime(t, pid)
	drain(t, s) // start counting from here

	var total uint64
	var slowest time.Duration
	for range 10 {
		time.Sleep(150 * time.Millisecond)
		start := time.Now()
		samples, _ := drain(t, s)
		slowest = max(slowest, time.Since(start))
		total += countOf(samples, pid)
	}
	used := cpuTime(t, pid) - cpu0
	t.Logf("10 drains: %d samples of the busy process for %s of its CPU time; slowest Drain %s", total, used, slowest)
	// cpu-clock samples at 99 Hz of CPU time: the drains together must account for
	// the CPU time the process used (within the 10 ms resolution of /proc/pid/stat).
	want := used.Seconds() * 99
	if float64(total) < want*0.7 || float64(total) > want*1.3+5 {
		t.Errorf("10 drains counted %d samples of the busy process; it used %s of CPU, i.e. ~%.0f samples at 99 Hz", total, used, want)
	}
}

func TestExcludedProcessesAreNotSampled(t *testing.T) {
	requireSampling(t)
	kept, excluded := busyProcess(t), busyProcess(t)
	s := openSampler(t, Config{ExcludePIDs: []uint32{excluded}})
	keptCPU := cpuTime(t, kept)
	waitCPU(t, kept, keptCPU+time.Second/2)
	waitCPU(t, excluded, time.Second/2)
	samples, _ := drain(t, s)
	if n := countOf(samples, kept); n < 25 {
		t.Errorf("busy process %d (not excluded): %d samples for 0.5 s of CPU time, want > 25", kept, n)
	}
	if n := countOf(samples, excluded); n != 0 {
		t.Errorf("excluded process %d: %d samples, want 0", excluded, n)
	}
}

func TestSmallMapsCountEveryLostSampleAsMapFull(t *testing.T) {
	requireSampling(t)
	a, b := busyProcess(t), busyProcess(t)
	// One count entry: the second distinct {tgid, pid, stacks} is dropped (two busy
	// processes guarantee one). One stack slot: the second distinct stack finds the
	// stack map full.
	s := openSampler(t, Config{MaxStacks: 1, MaxEntries: 1})
	waitCPU(t, a, time.Second/2)
	waitCPU(t, b, time.Second/2)
	samples, stats := drain(t, s) // checks counted + MapFull == Samples
	if len(samples) > 1 {
		t.Errorf("%d count entries in a map of 1", len(samples))
	}
	if stats.MapFull == 0 {
		t.Errorf("no map-full drops with MaxEntries 1 and busy processes %d and %d: %+v", a, b, stats)
	}
	if stats.StackMapFull == 0 || stats.StackMapFull > stats.MapFull {
		t.Errorf("stack-map-full drops %d with MaxStacks 1, want some and at most MapFull %d", stats.StackMapFull, stats.MapFull)
	}
	// The next interval starts from empty maps again: once a busy process has
	// run some more (a fixed sleep may give it no CPU on a loaded machine).
	waitCPU(t, a, cpuTime(t, a)+100*time.Millisecond)
	if _, stats := drain(t, s); stats.Samples == 0 {
		t.Errorf("no samples after the maps were cleared: %+v", stats)
	}
}

// hasCPUCyclesPMU probes perf_event_open for cpu-cycles on this process.
func hasCPUCyclesPMU(t *testing.T) bool {
	attr := unix.PerfEventAttr{
		Type:   unix.PERF_TYPE_HARDWARE,
		Config: unix.PERF_COUNT_HW_CPU_CYCLES,
		Size:   uint32(unix.PERF_ATTR_SIZE_VER0),
		Bits:   unix.PerfBitDisabled,
	}
	fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err == nil {
		unix.Close(fd)
		return true
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV) {
		return false
	}
	t.Fatalf("probing cpu-cycles: %v", err)
	return false
}

func TestCPUCyclesNeedsAPMU(t *testing.T) {
	requireSampling(t)
	s, err := Open(Config{Event: "cpu-cycles", SamplePeriod: 10_000_000})
	if hasCPUCyclesPMU(t) {
		if err != nil {
			t.Fatalf("this machine has a PMU, yet Open(cpu-cycles): %v", err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		return
	}
	const want = "hardware event cpu-cycles is not available on this machine (no PMU): use cpu-clock"
	if err == nil {
		s.Close()
		t.Fatal("Open(cpu-cycles) succeeded on a machine without a PMU")
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Open(cpu-cycles) error %q does not say %q", err, want)
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENODEV) {
		t.Errorf("error %v does not wrap the kernel's errno", err)
	}
}

func TestCloseIsIdempotent(t *testing.T) {
	requireSampling(t)
	s, err := Open(Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if _, _, err := s.Drain(); !errors.Is(err, ErrClosed) {
		t.Errorf("Drain after Close: %v, want ErrClosed", err)
	}
}

func TestOpenLeavesMemlockAloneOnKernelsWithMemcgAccounting(t *testing.T) {
	requireSampling(t)
	if !kernelAtLeast(t, 5, 11) {
		t.Skip("kernel older than 5.11 charges BPF memory to RLIMIT_MEMLOCK: raising it is expected")
	}
	var before, after unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &before); err != nil {
		t.Fatal(err)
	}
	// Maps larger than this machine's 8 MiB memlock limit would be refused if they
	// were charged to it: two stack maps of 16384 × 1016 bytes are 32 MiB.
	openSampler(t, Config{MaxStacks: 16384})
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &after); err != nil {
		t.Fatal(err)
	}
	if before != after {
		t.Errorf("Open changed RLIMIT_MEMLOCK from %+v to %+v on a kernel that does not need it", before, after)
	}
}

func kernelAtLeast(t *testing.T, major, minor int) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var maj, min int
	if _, err := fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &maj, &min); err != nil {
		t.Fatalf("parsing kernel release: %v", err)
	}
	return maj > major || maj == major && min >= minor
}

func TestOpenRefusesAnOfflineCPU(t *testing.T) {
	requireSampling(t)
	_, err := Open(Config{CPUs: []int{0, 4095}})
	if err == nil || !strings.Contains(err.Error(), "CPUs: CPU 4095 is not online") {
		t.Errorf("Open with CPU 4095: %v, want an error naming CPUs and CPU 4095", err)
	}
}

func TestEverySoftwareEventOpensAndEveryHardwareEventNeedsAPMU(t *testing.T) {
	requireSampling(t)
	pmu := hasCPUCyclesPMU(t)
	for _, ev := range Events {
		t.Run(ev, func(t *testing.T) {
			s, err := Open(Config{Event: ev})
			if isHardware(ev) && !pmu {
				want := "hardware event " + ev + " is not available on this machine (no PMU): use cpu-clock"
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("Open(%s) = %v, want %q", ev, err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%s): %v", ev, err)
			}
			defer s.Close()
			if _, _, err := s.Drain(); err != nil {
				t.Errorf("Drain: %v", err)
			}
		})
	}
}
