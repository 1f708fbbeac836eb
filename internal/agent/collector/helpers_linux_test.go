//go:build linux

package collector

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
)

// requireSampling skips when this process cannot load perf_event BPF programs: it
// needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN). On kprof's machines it never skips.
func requireSampling(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("cannot read capabilities: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		hex, ok := strings.CutPrefix(line, "CapEff:")
		if !ok {
			continue
		}
		caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
		if err != nil {
			t.Fatalf("cannot parse CapEff %q: %v", hex, err)
		}
		const capSysAdmin, capPerfmon, capBPF = 21, 38, 39
		has := func(c int) bool { return caps&(1<<c) != 0 }
		if !has(capSysAdmin) && (!has(capPerfmon) || !has(capBPF)) {
			t.Fatal("needs CAP_BPF and CAP_PERFMON: run make test as root")
		}
		return
	}
	t.Fatal("no CapEff in /proc/self/status")
}

// newSymbolizer returns a real Symbolizer.
func newSymbolizer(t *testing.T) *symbolize.Symbolizer {
	t.Helper()
	s, err := symbolize.New(symbolize.Config{})
	if err != nil {
		t.Fatalf("symbolize.New: %v", err)
	}
	return s
}

// events collects what a Collector publishes.
type events struct {
	mu  sync.Mutex
	evs []*profile.Event
}

func (e *events) publish(ev *profile.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.evs = append(e.evs, ev)
}

func (e *events) all() []*profile.Event {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*profile.Event(nil), e.evs...)
}

// openCollector opens a Collector at hz on cpu-clock and shuts it down at cleanup.
func openCollector(t *testing.T, hz uint64, publish func(*profile.Event)) *Collector {
	t.Helper()
	if publish == nil {
		publish = func(*profile.Event) {}
	}
	c, err := New(Config{
		Collection: collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: hz, Interval: time.Minute},
		Node:       "node-a",
		Cluster:    "test",
		Symbolizer: newSymbolizer(t),
		Publish:    publish,
		// The test binary's own samples are not wanted.
		ExcludePIDs: []uint32{uint32(os.Getpid())},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return c
}

// weighted is a function of a workload and its share of the work, in units.
type weighted struct {
	Name   string
	Weight int
}

// goWorkload is a Go program that calls each function in turn, each for Weight × unit
// of CPU time, in one goroutine: every function is the same loop, run for an
// iteration count calibrated at start, so the shares of CPU are the weights' shares.
// It prints "ready" once calibrated.
const goWorkload = `package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

var sink uint64

{{range .}}
//go:noinline
func {{.Name}}(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}
{{end}}

func main() {
	unitMicros, _ := strconv.Atoi(os.Args[1])
	const probe = 20000000
	t0 := time.Now()
	sink += calibrate(probe)
	perMicro := float64(probe) / float64(time.Since(t0).Microseconds())
	unit := int(perMicro * float64(unitMicros))
	fmt.Println("ready")
	for {
{{- range .}}
		sink += {{.Name}}({{.Weight}} * unit)
{{- end}}
	}
}

//go:noinline
func calibrate(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}
`

// cWorkload is goWorkload in C, built with frame pointers.
const cWorkload = `#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

static volatile uint64_t sink;

static uint64_t loop(long n) {
	uint64_t x = (uint64_t)n;
	for (long i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + (uint64_t)i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}
{{range .}}
__attribute__((noinline)) uint64_t {{.Name}}(long n) {
	uint64_t x = (uint64_t)n;
	for (long i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + (uint64_t)i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}
{{end}}
int main(int argc, char **argv) {
	long unitMicros = atol(argv[1]);
	const long probe = 20000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	sink += loop(probe);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double micros = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	long unit = (long)(probe / micros * unitMicros);
	printf("ready\n");
	fflush(stdout);
	for (;;) {
{{- range .}}
		sink += {{.Name}}({{.Weight}} * unit);
{{- end}}
	}
}
`

// buildWorkload writes the program for funcs in lang ("go" or "c") and builds it.
func buildWorkload(t *testing.T, lang string, funcs []weighted) string {
	t.Helper()
	dir := t.TempDir()
	src, tmpl := filepath.Join(dir, "main.go"), goWorkload
	if lang == "c" {
		src, tmpl = filepath.Join(dir, "main.c"), cWorkload
	}
	var b bytes.Buffer
	if err := template.Must(template.New(lang).Parse(tmpl)).Execute(&b, funcs); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "workload")
	var cmd *exec.Cmd
	if lang == "c" {
		if _, err := exec.LookPath("gcc"); err != nil {
			t.Fatalf("gcc not installed (apt-get install gcc; hack/install-tools.sh does): %v", err)
		}
		cmd = exec.Command("gcc", "-O1", "-fno-omit-frame-pointer", "-o", bin, src)
	} else {
		cmd = exec.Command("go", "build", "-o", bin, src)
		cmd.Env = append(os.Environ(), "GO111MODULE=off", "CGO_ENABLED=0")
	}
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the %s workload: %v\n%s", lang, err, out)
	}
	return bin
}

// startReady starts a command with GOMAXPROCS=1, waits for its "ready" line and
// returns its pid; cleanup kills it.
func startReady(t *testing.T, name string, args ...string) int32 {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("%s: want a ready line, got %q, %v", name, line, err)
	}
	return int32(cmd.Process.Pid)
}

// cpuTime returns the CPU time (user + system) process pid has used so far.
func cpuTime(t *testing.T, pid int32) time.Duration { return agenttest.CPUTime(t, int(pid)) }

// profileFor returns pid's samples with a stack from profileOnce. A sample can come
// without any stack when its user stack could not be read (the first frame's page
// not present) while it ran in user mode, so that it has no kernel stack either:
// rare, and not the fidelity these tests measure. So a measurement that has
// stackless samples is taken again (up to 3 times), and the last one's stackless
// samples, at most 5 %, are left out.
func profileFor(t *testing.T, c *Collector, pid int32, d time.Duration) []profile.Sample {
	t.Helper()
	for try := 1; ; try++ {
		mine := profileOnce(t, c, pid, d)
		var kept []profile.Sample
		var lost uint64
		for _, s := range mine {
			if len(s.Frames) == 0 {
				lost += s.Count
				continue
			}
			kept = append(kept, s)
		}
		if lost == 0 {
			return kept
		}
		all := total(mine)
		t.Logf("measurement %d: %d of %d samples of process %d have no stack", try, lost, all, pid)
		if try < 3 {
			continue
		}
		if float64(lost) > 0.05*float64(all) {
			t.Fatalf("%d of %d samples of process %d have no stack after %d measurements", lost, all, pid, try)
		}
		return kept
	}
}

// profileOnce collects from c while pid uses d of CPU time (so that the number of its
// samples does not depend on how loaded the machine is), and returns pid's samples.
func profileOnce(t *testing.T, c *Collector, pid int32, d time.Duration) []profile.Sample {
	t.Helper()
	if _, err := c.Collect(); err != nil { // start a fresh interval
		t.Fatalf("Collect: %v", err)
	}
	start := cpuTime(t, pid)
	// The process gets what the machine leaves it: under CI beside stress-ng and other
	// test runs, a tenth of a CPU was seen (the four fidelity workloads share two CPUs
	// with everything else), so the wait allows 30 × d of wall time.
	const patience = 30
	deadline := time.Now().Add(patience * d)
	for used := time.Duration(0); used < d; used = cpuTime(t, pid) - start {
		if time.Now().After(deadline) {
			t.Fatalf("process %d used %s of CPU in %s, want %s", pid, used.Round(time.Millisecond), patience*d, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ev, err := c.Collect()
	if err != nil {
		t.Fatalf("Collect: %v", err)
	}
	var mine []profile.Sample
	for _, s := range ev.Samples {
		if s.PID == pid {
			mine = append(mine, s)
		}
	}
	return mine
}

// total sums the counts of samples.
func total(samples []profile.Sample) uint64 {
	var n uint64
	for _, s := range samples {
		n += s.Count
	}
	return n
}

// shareWith is the share of samples whose stack has a frame of function fn.
func shareWith(samples []profile.Sample, fn string) float64 {
	var n uint64
	for _, s := range samples {
		for _, f := range s.Frames {
			if f.Function == fn {
				n += s.Count
				break
			}
		}
	}
	return float64(n) / float64(total(samples))
}

// leafNamed is the share of samples whose leaf frame has a function name.
func leafNamed(samples []profile.Sample) float64 {
	var n uint64
	for _, s := range samples {
		if len(s.Frames) > 0 && s.Frames[0].Function != "" {
			n += s.Count
		}
	}
	return float64(n) / float64(total(samples))
}

// leafShares gives each leaf function's share of the samples.
func leafShares(samples []profile.Sample) map[string]float64 {
	counts := make(map[string]uint64)
	for _, s := range samples {
		if len(s.Frames) > 0 {
			counts[s.Frames[0].Function] += s.Count
		}
	}
	shares := make(map[string]float64, len(counts))
	all := float64(total(samples))
	for fn, n := range counts {
		shares[fn] = float64(n) / all
	}
	return shares
}
