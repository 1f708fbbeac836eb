//go:build linux

package bpf

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// pathsProgram spends its time in spin at the end of one of 2^depth call paths
// through f0 and f1, a different one each time. Built with -O0: every function
// has a frame pointer, spin too (gcc -O1 gives none to a leaf that needs no stack).
const pathsProgram = `
#include <stdio.h>
volatile unsigned long sink;
__attribute__((noinline)) void spin(void) { for (int i = 0; i < 3000; i++) sink += i; }
__attribute__((noinline)) void f1(unsigned bits, int depth);
__attribute__((noinline)) void f0(unsigned bits, int depth) {
	if (depth == 0) spin(); else if (bits & 1) f1(bits >> 1, depth - 1); else f0(bits >> 1, depth - 1);
	sink++;
}
__attribute__((noinline)) void f1(unsigned bits, int depth) {
	if (depth == 0) spin(); else if (bits & 1) f1(bits >> 1, depth - 1); else f0(bits >> 1, depth - 1);
	sink--;
}
int main(void) {
	printf("ready\n");
	fflush(stdout);
	for (unsigned x = 0;; x++) f0(x * 2654435761u, DEPTH);
}
`

func TestThousandsOfDistinctStacksLoseNoSample(t *testing.T) {
	requireSampling(t)
	const depth = 13 // 8192 paths
	bin := buildC(t, pathsProgram, "-O0", fmt.Sprintf("-DDEPTH=%d", depth))
	syms := symbols(t, bin, "spin", "f0", "f1", "main")
	// 4 kHz of CPU time: up to 4000 samples per second of the program, on ~3000 of
	// its paths; room for 2^16 stacks and 2^18 counts of all processes in an
	// interval. A full map is no error here (a loaded machine may fill it in
	// 250 ms): drain checks that every sample is counted or counted as map-full.
	s := openSampler(t, Config{SamplePeriod: 250_000, MaxStacks: 1 << 16, MaxEntries: 1 << 18})
	pid := startProgram(t, bin)
	maps, exe := execMappings(t, pid, bin)
	bias := maps[exe].Bias
	in := func(pc uint64, names ...string) bool {
		for _, n := range names {
			if s := syms[n]; pc-bias >= s.start && pc-bias < s.end {
				return true
			}
		}
		return false
	}

	// Drains every 250 ms (on a loaded machine, every process's stacks in a longer
	// interval could fill the maps) until the program was sampled on 2000 of its
	// paths, however long the machine's load makes it take.
	drain(t, s)
	var stats Stats
	var all, inSpin, stackless, other uint64
	paths := map[string]bool{}
	stacks := map[string]bool{}
	for deadline := time.Now().Add(5 * time.Minute); len(paths) < 2000; {
		if time.Now().After(deadline) {
			t.Fatalf("the program was sampled on %d paths in 5 minutes (%d samples in spin), want 2000", len(paths), inSpin)
		}
		time.Sleep(250 * time.Millisecond)
		samples, st := drain(t, s) // checks counted + MapFull == Samples
		stats.Samples += st.Samples
		stats.MapFull += st.MapFull
		stats.StackMapFull += st.StackMapFull
		for _, smp := range samples {
			stacks[fmt.Sprint(smp.User, smp.Kernel)] = true
			if smp.TGID != pid {
				continue
			}
			all += smp.Count
			if len(smp.User) == 0 {
				// With BPF_MAP_TYPE_STACK_TRACE, a stack whose bucket was taken.
				stackless += smp.Count
				continue
			}
			if !in(smp.User[0], "spin") {
				continue
			}
			inSpin += smp.Count
			// spin, then depth+1 frames of f0 and f1, then main: a path of the program.
			ok := len(smp.User) >= depth+3 && in(smp.User[depth+2], "main")
			var path []byte
			for i := 1; ok && i <= depth+1; i++ {
				switch {
				case in(smp.User[i], "f0"):
					path = append(path, '0')
				case in(smp.User[i], "f1"):
					path = append(path, '1')
				default:
					ok = false
				}
			}
			if !ok {
				// A sample in spin's prologue or epilogue, whose frame pointer is
				// its caller's: the caller is missing.
				if other == 0 {
					t.Logf("for example, user stack %x is not spin, %d frames of f0 and f1, main", smp.User, depth+1)
				}
				other += smp.Count
				continue
			}
			paths[string(path)] = true
		}
	}
	t.Logf("%d samples of the program, %d in spin (%d not on a path), on %d distinct paths; %d distinct stacks of all processes; %+v",
		all, inSpin, other, len(paths), len(stacks), stats)
	if other > inSpin/50+2 {
		t.Errorf("%d of %d samples in spin do not have the stack of a path of the program", other, inSpin)
	}
	if stackless != 0 {
		t.Errorf("%d of %d samples of the program have no user stack", stackless, all)
	}
}

func TestStacksWhoseHashesCollideAreKeptApart(t *testing.T) {
	requireSampling(t)
	const depth = 13
	bin := buildC(t, pathsProgram, "-O0", fmt.Sprintf("-DDEPTH=%d", depth))
	syms := symbols(t, bin, "spin", "f0", "f1", "main")
	// 12 bits of hash: 4096 keys (and the probes past them) for thousands of
	// stacks, user and kernel, of every process: most inserts find their key
	// taken, by the same stack or by another.
	cfg := Config{SamplePeriod: 100_000, MaxStacks: 1 << 16, MaxEntries: 1 << 16, stackHashMask: 1<<12 - 1}
	s := openSampler(t, cfg)
	pid := startProgram(t, bin)
	maps, exe := execMappings(t, pid, bin)
	bias := maps[exe].Bias
	in := func(pc uint64, name string) bool {
		s := syms[name]
		return pc-bias >= s.start && pc-bias < s.end
	}

	drain(t, s)
	waitCPU(t, pid, cpuTime(t, pid)+time.Second/2)
	samples, stats := drain(t, s) // checks counted + MapFull == Samples
	if stats.StackMapFull == 0 {
		t.Errorf("no sample lost for want of a key with 4096 keys for thousands of stacks: %+v", stats)
	}
	var mine, inSpin, paths, other uint64
	for _, smp := range samples {
		for _, pc := range smp.User {
			if pc >= 1<<56 { // the unwinder stops at a return address past user space
				t.Fatalf("kernel address %#x in the user stack %x of %d/%d: stacks mixed up", pc, smp.User, smp.TGID, smp.PID)
			}
		}
		for _, pc := range smp.Kernel {
			if pc < 0xffff800000000000 {
				t.Fatalf("user address %#x in the kernel stack %x of %d/%d: stacks mixed up", pc, smp.Kernel, smp.TGID, smp.PID)
			}
		}
		if smp.TGID != pid || len(smp.User) == 0 {
			continue
		}
		mine += smp.Count
		// Another process's stack would start outside the program's mappings
		// (other binaries, or its libraries at other addresses).
		if !slices.ContainsFunc(maps, func(m Mapping) bool { return smp.User[0] >= m.Start && smp.User[0] < m.End }) {
			t.Errorf("user stack %x of the program starts outside its executable mappings: another process's stack", smp.User)
		}
		if !in(smp.User[0], "spin") {
			continue
		}
		inSpin += smp.Count
		ok := len(smp.User) >= depth+3 && in(smp.User[depth+2], "main")
		for i := 1; ok && i <= depth+1; i++ {
			ok = in(smp.User[i], "f0") || in(smp.User[i], "f1")
		}
		if ok {
			paths += smp.Count
		} else {
			other += smp.Count
		}
	}
	t.Logf("program %d: %d samples counted, %d in spin, %d of them on a path; stats %+v", pid, mine, inSpin, paths, stats)
	if paths == 0 {
		t.Errorf("no sample of the program counted on one of its paths")
	}
	if other > inSpin/50+2 {
		t.Errorf("%d of %d samples in spin not on one of the program's paths: stacks mixed up?", other, inSpin)
	}
}
