//go:build linux

package collector

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/unwind/loader"
)

// The unwind tests profile code built without frame pointers, whose stacks only
// the unwind tables (internal/agent/unwind, loaded by unwind/loader) can walk.

// cNoFP spends 75 % of its time in leaf called from caller75 and 25 % from caller25.
// noipa keeps the two identical callers apart (no identical code folding) and
// uninlined; the sink after each call keeps it from being a tail call.
const cNoFP = `#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

static volatile uint64_t sink;

__attribute__((noipa)) uint64_t leaf(long n) {
	uint64_t x = (uint64_t)n;
	for (long i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + (uint64_t)i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}

__attribute__((noipa)) void caller75(long n) { sink += leaf(n); }
__attribute__((noipa)) void caller25(long n) { sink += leaf(n) + 1; }

int main(int argc, char **argv) {
	long unitMicros = atol(argv[1]);
	const long probe = 20000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	sink += leaf(probe);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double micros = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	long unit = (long)(probe / micros * unitMicros);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		caller75(3 * unit);
		caller25(unit);
	}
}
`

// cxxDeep spends its time five calls below main: main → work::level1 → … → level5.
const cxxDeep = `#include <cstdio>
#include <cstdint>
#include <vector>

static volatile uint64_t sink;

namespace work {
__attribute__((noipa)) uint64_t level5(long n) {
	uint64_t x = (uint64_t)n;
	for (long i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + (uint64_t)i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}
__attribute__((noipa)) uint64_t level4(long n) { uint64_t r = level5(n); sink += r; return r + 4; }
__attribute__((noipa)) uint64_t level3(long n) { uint64_t r = level4(n); sink += r; return r + 3; }
__attribute__((noipa)) uint64_t level2(long n) { uint64_t r = level3(n); sink += r; return r + 2; }
__attribute__((noipa)) uint64_t level1(std::vector<long> &v) { uint64_t r = 0; for (long n : v) r += level2(n); return r + 1; }
}

int main() {
	std::vector<long> v{100000, 200000, 300000};
	std::printf("ready\n");
	std::fflush(stdout);
	for (;;) sink += work::level1(v);
}
`

// cChurn spins for argv[1] ms of CPU time without frame pointers (1 by
// default), then sleeps argv[2] ms (none by default) and exits.
const cChurn = `#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static volatile uint64_t sink;

__attribute__((noipa)) void spin(long ms) {
	struct timespec t;
	for (;;) {
		for (int i = 0; i < 10000; i++) sink += i;
		clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
		if (t.tv_sec * 1000 + t.tv_nsec / 1000000 >= ms) return;
	}
}

int main(int argc, char **argv) {
	spin(argc > 1 ? atol(argv[1]) : 1);
	if (argc > 2) {
		long ms = atol(argv[2]);
		struct timespec d = {ms / 1000, (ms % 1000) * 1000000};
		nanosleep(&d, NULL);
	}
	return 0;
}
`

// buildNative compiles src with gcc or g++ (by lang, "c" or "c++") and flags.
func buildNative(t *testing.T, lang, src string, flags ...string) string {
	t.Helper()
	cc, ext := "gcc", ".c"
	if lang == "c++" {
		cc, ext = "g++", ".cc"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Fatalf("%s not installed (apt-get install %s): %v", cc, cc, err)
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "main"+ext)
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "workload")
	args := append(slices.Clone(flags), "-o", bin, file)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
	}
	return bin
}

// noFramePointers are the flags of the workloads: optimized, no frame pointers.
var noFramePointers = []string{"-O2", "-fomit-frame-pointer"}

// waitLoaded waits until the collector's unwind loader has loaded pid, so that
// what is measured next is unwound with its tables.
func waitLoaded(t *testing.T, c *Collector, pid int32) {
	t.Helper()
	if c.loader == nil {
		t.Fatal("the collector has no unwind table loader: the sampler does not unwind with tables")
	}
	deadline := time.Now().Add(2 * time.Minute)
	for !slices.Contains(c.loader.Processes(), uint32(pid)) {
		if time.Now().After(deadline) {
			t.Fatalf("process %d was not loaded in 2 minutes; loader %+v", pid, c.loader.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reaching is the share of samples whose frames hold, from the leaf toward the
// root, a frame matching each of chain in order.
func reaching(samples []profile.Sample, chain ...func(string) bool) float64 {
	var n uint64
	for _, s := range samples {
		i := 0
		for _, f := range s.Frames {
			if i < len(chain) && chain[i](f.Function) {
				i++
			}
		}
		if i == len(chain) {
			n += s.Count
		}
	}
	return float64(n) / float64(total(samples))
}

func named(name string) func(string) bool { return func(fn string) bool { return fn == name } }

// containing matches C++'s mangled names by the identifier in them.
func containing(part string) func(string) bool {
	return func(fn string) bool { return strings.Contains(fn, part) }
}

// isMain matches a program's main, or Py_BytesMain (CPython's main calls it and
// may be folded into it).
func isMain(fn string) bool { return fn == "main" || fn == "Py_BytesMain" }

// logStacks logs the most frequent stacks not satisfying ok, to show why.
func logStacks(t *testing.T, samples []profile.Sample, ok func(profile.Sample) bool) {
	t.Helper()
	bad := slices.Clone(samples)
	bad = slices.DeleteFunc(bad, ok)
	slices.SortFunc(bad, func(a, b profile.Sample) int { return int(b.Count) - int(a.Count) })
	for _, s := range bad[:min(8, len(bad))] {
		var b strings.Builder
		for _, f := range s.Frames {
			fmt.Fprintf(&b, " %s", cmpOr(f.Function, fmt.Sprintf("%#x", f.Address)))
		}
		t.Logf("×%d:%s", s.Count, b.String())
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestStacksWithoutFramePointersAreWhole(t *testing.T) {
	requireSampling(t)
	t.Run("a C program keeps its callers' shares", func(t *testing.T) {
		t.Parallel()
		bin := buildNative(t, "c", cNoFP, noFramePointers...)
		c := openCollector(t, shareHz, nil)
		pid := startReady(t, bin, "250")
		waitLoaded(t, c, pid)
		mine := profileFor(t, c, pid, fidelityCPU)
		n := total(mine)
		hot, cold := shareWith(mine, "caller75"), shareWith(mine, "caller25")
		toMain := reaching(mine, named("main"))
		t.Logf("%d samples: caller75 %.1f%%, caller25 %.1f%%, reaching main %.1f%%", n, 100*hot, 100*cold, 100*toMain)
		if want := int(fidelityCPU.Seconds() * shareHz); n < uint64(want*2/3) {
			t.Fatalf("%d samples in %s of CPU at %d Hz, want about %d", n, fidelityCPU, shareHz, want)
		}
		for _, s := range []struct {
			fn         string
			got, truth float64
		}{{"caller75", hot, 0.75}, {"caller25", cold, 0.25}} {
			if d := s.got - s.truth; d > 0.03 || d < -0.03 {
				t.Errorf("%s share %.1f%%, truth %.0f%%: off by %.1f points, want at most 3", s.fn, 100*s.got, 100*s.truth, 100*d)
			}
		}
		if t.Failed() {
			logStacks(t, mine, func(s profile.Sample) bool { return reaching([]profile.Sample{s}, named("main")) == 1 })
		}
	})
	t.Run("a C++ program's stacks reach main through five levels", func(t *testing.T) {
		t.Parallel()
		bin := buildNative(t, "c++", cxxDeep, noFramePointers...)
		c := openCollector(t, 99, nil)
		pid := startReady(t, bin)
		waitLoaded(t, c, pid)
		mine := profileFor(t, c, pid, fidelityCPU)
		chain := []func(string) bool{containing("level5"), containing("level4"), containing("level3"), containing("level2"), containing("level1"), named("main")}
		whole := reaching(mine, chain...)
		t.Logf("%d samples, %.2f%% with level5 ← … ← level1 ← main", total(mine), 100*whole)
		if total(mine) < 500 {
			t.Fatalf("%d samples, want about 990", total(mine))
		}
		if whole < 0.95 {
			t.Errorf("%.2f%% of the samples carry the whole chain to main, want at least 95%%", 100*whole)
			logStacks(t, mine, func(s profile.Sample) bool { return reaching([]profile.Sample{s}, chain...) == 1 })
		}
	})
	t.Run("Debian's python3.11 reaches main as perf --call-graph dwarf does", func(t *testing.T) {
		t.Parallel()
		testPythonReachesMain(t)
	})
}

// python is Debian's own CPython, built without frame pointers.
const python = "/usr/bin/python3.11"

func testPythonReachesMain(t *testing.T) {
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s missing (apt-get install python3.11): %v", python, err)
	}
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Fatalf("perf not installed (hack/install-perf.sh): %v", err)
	}
	c := openCollector(t, 99, nil)
	pid := startReady(t, python, "-c", "print('ready', flush=True)\nx = 0\nwhile True:\n    x = (x * 31 + 7) % 1000003\n")
	waitLoaded(t, c, pid)

	data := filepath.Join(t.TempDir(), "perf.data")
	rec := exec.Command(perf, "record", "-e", "cpu-clock", "-F", "99", "--call-graph", "dwarf", "-p", strconv.Itoa(int(pid)), "-o", data)
	var recOut bytes.Buffer
	rec.Stdout, rec.Stderr = &recOut, &recOut
	if err := rec.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Process.Kill(); _ = rec.Wait() })
	mine := profileFor(t, c, pid, fidelityCPU)
	_ = rec.Process.Signal(interrupt)
	if err := rec.Wait(); err != nil && !strings.Contains(err.Error(), "signal") && !strings.Contains(err.Error(), "exit status") {
		t.Fatalf("perf record: %v\n%s", err, recOut.String())
	}
	out, err := exec.Command(perf, "script", "-i", data, "-F", "ip,sym").Output()
	if err != nil {
		t.Fatalf("perf script: %v\nperf record said: %s", err, recOut.String())
	}
	perfSamples, perfMain := perfReachingMain(out)

	ours := reaching(mine, isMain)
	perfShare := float64(perfMain) / float64(max(1, perfSamples))
	t.Logf("kprof: %d samples, %.2f%% reach main; perf --call-graph dwarf: %d samples, %.2f%% reach main", total(mine), 100*ours, perfSamples, 100*perfShare)
	if total(mine) < 500 {
		t.Fatalf("%d samples, want about 990", total(mine))
	}
	if ours < 0.95 {
		t.Errorf("%.2f%% of python's samples reach main, want at least 95%% (perf: %.2f%%)", 100*ours, 100*perfShare)
		logStacks(t, mine, func(s profile.Sample) bool { return reaching([]profile.Sample{s}, isMain) == 1 })
	}
	if perfSamples < 100 {
		t.Errorf("perf script gave %d samples, want about 990: the comparison means nothing", perfSamples)
	}
}

// perfReachingMain counts the samples of perf script -F ip,sym (a stack per
// sample, one "addr sym" line per frame, blank lines between samples) and those
// with a main frame.
func perfReachingMain(out []byte) (samples, withMain int) {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	in, found := false, false
	end := func() {
		if in {
			samples++
			if found {
				withMain++
			}
		}
		in, found = false, false
	}
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			end()
			continue
		}
		in = true
		if len(f) >= 2 {
			sym, _, _ := strings.Cut(f[1], "+")
			if isMain(sym) {
				found = true
			}
		}
	}
	end()
	return samples, withMain
}

// settled waits until l's process count stays the same over two exit checks, at
// most 30 s, and returns its Stats then.
func settled(t *testing.T, l *loader.Loader) loader.Stats {
	t.Helper()
	const steady = 2 * loader.DefaultExitCheckEvery
	deadline := time.Now().Add(30 * time.Second)
	st, since := l.Stats(), time.Now()
	for time.Since(since) < steady && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if now := l.Stats(); now.Processes != st.Processes || now.RowsInUse != st.RowsInUse {
			st, since = now, time.Now()
		}
	}
	return st
}

// buildID is the GNU build ID of the ELF file at path, as the loader keys its table.
func buildID(t *testing.T, path string) string {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := f.Section(".note.gnu.build-id")
	if s == nil {
		t.Fatalf("%s has no build ID", path)
	}
	data, err := s.Data()
	if err != nil || len(data) <= 16 {
		t.Fatalf("%s: build ID note %x: %v", path, data, err)
	}
	return "gnu:" + hex.EncodeToString(data[16:]) // after namesz, descsz, type and "GNU\0"
}

func TestUnwindLoaderFollowsProcessChurn(t *testing.T) {
	requireSampling(t)
	bin := buildNative(t, "c", cChurn, noFramePointers...)
	key := buildID(t, bin)
	c := openCollector(t, 999, nil)
	if c.loader == nil {
		t.Fatal("the collector has no unwind table loader: the sampler does not unwind with tables")
	}
	// The rest of the node keeps running: the level before is what the loader
	// holds once it has caught up with what runs now (its process count steady
	// for two exit checks), or after 30 s on a node that never settles.
	before := settled(t, c.loader)
	inUseBefore := make(map[string]bool)
	for _, ts := range c.loader.Tables() {
		inUseBefore[ts.Key] = ts.Refs > 0
	}
	t.Logf("before: %+v", before)

	// Four starters run the churn program one process after another until 2000
	// have run and 20 s have passed; most live a millisecond or two, too short
	// for the loader (it learns new processes every 250 ms) to load them, which
	// is churn as a node sees it. A fifth starter runs lingering ones (20 ms of
	// CPU, then a second asleep) that the loader does load, so that loading and
	// forgetting is measured, not only the churn.
	const (
		want     = 2000
		churnFor = 20 * time.Second
		starters = 4
	)
	var (
		mu        sync.Mutex
		churnPIDs = make(map[uint32]bool)
		lingering = make(map[uint32]bool)
		churnErr  error
		wg        sync.WaitGroup
	)
	began := time.Now()
	giveUp := began.Add(5 * time.Minute)
	run := func(linger bool, args ...string) {
		for {
			mu.Lock()
			done := (len(churnPIDs) >= want && time.Since(began) >= churnFor) || time.Now().After(giveUp) || churnErr != nil
			mu.Unlock()
			if done {
				return
			}
			cmd := exec.Command(bin, args...)
			err := cmd.Start()
			if err == nil {
				mu.Lock()
				churnPIDs[uint32(cmd.Process.Pid)] = true
				if linger {
					lingering[uint32(cmd.Process.Pid)] = true
				}
				mu.Unlock()
				err = cmd.Wait()
			}
			if err != nil {
				mu.Lock()
				churnErr = err
				mu.Unlock()
				return
			}
		}
	}
	for range starters {
		wg.Go(func() { run(false) })
	}
	wg.Go(func() { run(true, "20", "1000") })
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	var loadedChurn, loadedLingering, maxRefs int
	seen := make(map[uint32]bool)
	for watching := true; watching; {
		select {
		case <-stopped:
			watching = false
		case <-time.After(100 * time.Millisecond):
		}
		procs := c.loader.Processes()
		mu.Lock()
		for _, p := range procs {
			if churnPIDs[p] && !seen[p] {
				seen[p] = true
				loadedChurn++
				if lingering[p] {
					loadedLingering++
				}
			}
		}
		mu.Unlock()
		for _, ts := range c.loader.Tables() {
			if ts.Key == key {
				maxRefs = max(maxRefs, ts.Refs)
			}
		}
	}
	if churnErr != nil {
		t.Fatalf("the churn program: %v", churnErr)
	}
	t.Logf("%d processes in %s (%d lingering); %d of them seen loaded (%d lingering), up to %d at once; loader %+v",
		len(churnPIDs), time.Since(began).Round(time.Second), len(lingering), loadedChurn, loadedLingering, maxRefs, c.loader.Stats())
	if len(churnPIDs) < want {
		t.Errorf("only %d processes ran in %s, want %d", len(churnPIDs), time.Since(began).Round(time.Second), want)
	}
	// A lingering process is sampled for 20 ms and alive for a second: the
	// loader, which looks every 250 ms, loads it unless the node starves it.
	if loadedLingering*2 < len(lingering) || maxRefs == 0 {
		t.Fatalf("%d of %d lingering processes seen loaded, the churn table had up to %d references: want at least half loaded",
			loadedLingering, len(lingering), maxRefs)
	}

	// Every churn process exited: the loader forgets them, and the churn
	// binary's table is used by none (kept in the LRU, or evicted).
	deadline := time.Now().Add(time.Minute)
	for {
		var left []uint32
		for _, p := range c.loader.Processes() {
			if churnPIDs[p] {
				left = append(left, p)
			}
		}
		refs := -1 // not in the kernel
		for _, ts := range c.loader.Tables() {
			if ts.Key == key {
				refs = ts.Refs
			}
		}
		st := c.loader.Stats()
		// Other processes of the node may have started meanwhile: the rows in
		// use may grow by the tables they brought, and their number by some.
		var brought uint32
		for _, ts := range c.loader.Tables() {
			if ts.Refs > 0 && !inUseBefore[ts.Key] && ts.Key != key {
				brought += ts.Rows
			}
		}
		back := st.Processes <= before.Processes+64 && st.RowsInUse <= before.RowsInUse+brought
		if len(left) == 0 && refs <= 0 && back {
			t.Logf("after: %+v; the churn binary's table %s", st, map[bool]string{true: "evicted", false: "in the LRU"}[refs < 0])
			if st.CachedTables > loader.DefaultMaxCachedTables {
				t.Errorf("%d tables in the LRU, want at most %d", st.CachedTables, loader.DefaultMaxCachedTables)
			}
			if st.RowsInUse+st.RowsCached > st.RowCapacity {
				t.Errorf("stats %+v: more rows than the capacity", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a minute after the churn: %d churn processes still loaded (%v), the churn table has %d references, loader %+v (before %+v, %d rows brought by new processes)", len(left), left[:min(10, len(left))], refs, st, before, brought)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := c.Collect(); err != nil {
		t.Errorf("Collect after the churn: %v", err)
	}
}
