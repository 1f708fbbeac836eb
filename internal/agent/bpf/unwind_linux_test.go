//go:build linux

package bpf

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/unwind"
)

// leafProgram spends its time in leaf, called by caller_a and caller_b, all
// without frame pointers.
const leafProgram = `
#include <stdio.h>
volatile unsigned long sink;
__attribute__((noinline)) void leaf(unsigned long n) { for (unsigned long i = 0; i < n; i++) sink += i * i; }
__attribute__((noinline)) void caller_a(unsigned long n) { leaf(n); sink++; }
__attribute__((noinline)) void caller_b(unsigned long n) { leaf(n * 2); sink--; }
int main(void) {
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		caller_a(100000);
		caller_b(100000);
	}
}
`

// leafStacks sums the samples of pid whose user stack starts in leaf, and those of
// them that go on through caller_a or caller_b to main.
func leafStacks(samples []RawSample, pid uint32, bias uint64, syms map[string]symbol) (leaf, full uint64, callers map[string]uint64) {
	in := func(pc uint64, name string) bool {
		s := syms[name]
		return pc-bias >= s.start && pc-bias < s.end
	}
	callers = map[string]uint64{}
	for _, smp := range samples {
		if smp.TGID != pid || len(smp.User) == 0 || !in(smp.User[0], "leaf") {
			continue
		}
		leaf += smp.Count
		if len(smp.User) < 3 || !in(smp.User[2], "main") {
			continue
		}
		for _, c := range []string{"caller_a", "caller_b"} {
			if in(smp.User[1], c) {
				full += smp.Count
				callers[c] += smp.Count
			}
		}
	}
	return leaf, full, callers
}

func TestTheUnwinderFindsTheCallersOfALeafWithoutFramePointers(t *testing.T) {
	requireSampling(t)
	bin := buildC(t, leafProgram, "-O2", "-fomit-frame-pointer")
	table, err := unwind.FromFile(bin, 0)
	if err != nil {
		t.Fatal(err)
	}
	rows := TableRows(table)
	syms := symbols(t, bin, "leaf", "caller_a", "caller_b", "main")
	s := openSampler(t, Config{Frequency: 499})
	if !s.Unwinder() {
		t.Fatal("the unwinder did not load on this kernel (see the log line above)")
	}
	pid := startProgram(t, bin)
	maps, exe := execMappings(t, pid, bin)
	bias := maps[exe].Bias

	// Without a table, the frame pointer (RBP, here not one) cannot find the callers.
	waitCPU(t, pid, cpuTime(t, pid)+time.Second/2)
	samples, stats := drain(t, s)
	fpLeaf, fpFull, _ := leafStacks(samples, pid, bias, syms)
	t.Logf("frame pointers only: %d of %d leaf samples reach main; %+v", fpFull, fpLeaf, stats.Unwind)
	if fpLeaf < 50 {
		t.Fatalf("%d samples in leaf for 0.5 s of CPU time at 499 Hz", fpLeaf)
	}
	if fpFull > fpLeaf/10 {
		t.Errorf("%d of %d leaf samples reached main by frame pointer in a program without frame pointers: the test cannot tell the table apart", fpFull, fpLeaf)
	}
	unknown, err := s.TakeUnknown()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(unknown, pid) {
		t.Errorf("TakeUnknown = %v, does not report the sampled process %d that has no mappings", unknown, pid)
	}

	// With the table: every mapping of the process, only the executable's with rows.
	const off = 1000 // rows anywhere in the array, not only at 0
	if err := s.WriteRows(off, rows); err != nil {
		t.Fatal(err)
	}
	maps[exe].RowOff, maps[exe].RowLen = off, uint32(len(rows))
	if err := s.SetProcess(pid, maps); err != nil {
		t.Fatal(err)
	}
	drain(t, s)
	if _, err := s.TakeUnknown(); err != nil {
		t.Fatal(err)
	}
	waitCPU(t, pid, cpuTime(t, pid)+time.Second/2)
	samples, stats = drain(t, s)
	leaf, full, callers := leafStacks(samples, pid, bias, syms)
	t.Logf("unwind table: %d of %d leaf samples reach main (%v); %+v", full, leaf, callers, stats.Unwind)
	if leaf < 50 || full < leaf*9/10 {
		t.Errorf("%d of %d leaf samples have the stack leaf, caller_a or caller_b, main: want at least 90 %%", full, leaf)
	}
	if callers["caller_a"] == 0 || callers["caller_b"] == 0 {
		t.Errorf("leaf samples by caller %v: want both callers", callers)
	}
	if stats.Unwind.FramesByTable == 0 {
		t.Errorf("no frame unwound by table: %+v", stats.Unwind)
	}
	unknown, err = s.TakeUnknown()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(unknown, pid) {
		t.Errorf("process %d, with all its mappings set, is reported unknown", pid)
	}

	// Once deleted, the process is unknown again.
	if err := s.DeleteProcess(pid); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteProcess(pid); err != nil {
		t.Errorf("deleting a process twice: %v", err)
	}
	waitCPU(t, pid, cpuTime(t, pid)+time.Second/10)
	if unknown, err = s.TakeUnknown(); err != nil || !slices.Contains(unknown, pid) {
		t.Errorf("TakeUnknown after DeleteProcess = %v, %v; want process %d", unknown, err, pid)
	}
}

func TestSetProcessRefusesBadMappings(t *testing.T) {
	requireSampling(t)
	s := openSampler(t, Config{MaxUnwindRows: 100})
	if !s.Unwinder() {
		t.Fatal("the unwinder did not load on this kernel")
	}
	if got := s.RowCapacity(); got != 100 {
		t.Errorf("RowCapacity = %d, want MaxUnwindRows 100", got)
	}
	bad := []struct {
		name string
		maps []Mapping
	}{
		{"an empty mapping", []Mapping{{Start: 10, End: 10}}},
		{"overlapping mappings", []Mapping{{Start: 10, End: 20}, {Start: 15, End: 30}}},
		{"unsorted mappings", []Mapping{{Start: 30, End: 40}, {Start: 10, End: 20}}},
		{"rows past the array", []Mapping{{Start: 10, End: 20, RowOff: 90, RowLen: 11}}},
		{"too many mappings", make([]Mapping, MaxMappings+1)},
	}
	for _, tc := range bad {
		t.Run(tc.name+" is refused", func(t *testing.T) {
			if err := s.SetProcess(1, tc.maps); err == nil {
				t.Errorf("SetProcess(%v) = nil", tc.maps)
			}
		})
	}
	if err := s.WriteRows(99, make([]unwind.Row, 2)); err == nil {
		t.Error("WriteRows past the array = nil")
	}
	if err := s.WriteRows(98, make([]unwind.Row, 2)); err != nil {
		t.Errorf("WriteRows to the end of the array: %v", err)
	}
	full := make([]Mapping, MaxMappings)
	for i := range full {
		full[i] = Mapping{Start: uint64(i) * 100, End: uint64(i)*100 + 50, RowOff: 0, RowLen: 100}
	}
	if err := s.SetProcess(1, full); err != nil {
		t.Errorf("SetProcess with MaxMappings mappings: %v", err)
	}
}

func TestTheFramePointerProgramHasNoUnwinder(t *testing.T) {
	requireSampling(t)
	s := openSampler(t, Config{FramePointersOnly: true})
	if s.Unwinder() || s.RowCapacity() != 0 {
		t.Errorf("FramePointersOnly: Unwinder %v, RowCapacity %d", s.Unwinder(), s.RowCapacity())
	}
	if err := s.SetProcess(1, nil); !errors.Is(err, ErrNoUnwinder) {
		t.Errorf("SetProcess: %v, want ErrNoUnwinder", err)
	}
	if err := s.WriteRows(0, make([]unwind.Row, 1)); !errors.Is(err, ErrNoUnwinder) {
		t.Errorf("WriteRows: %v, want ErrNoUnwinder", err)
	}
	if u, err := s.TakeUnknown(); u != nil || err != nil {
		t.Errorf("TakeUnknown: %v, %v; want nothing", u, err)
	}
	pid := busyProcess(t)
	waitCPU(t, pid, cpuTime(t, pid)+time.Second/2)
	samples, _ := drain(t, s)
	var withStack uint64
	for _, smp := range samples {
		if smp.TGID == pid && len(smp.User) > 0 {
			withStack += smp.Count
		}
	}
	if withStack < 25 {
		t.Errorf("%d samples of busy process %d with a user stack for 0.5 s of CPU", withStack, pid)
	}
}
