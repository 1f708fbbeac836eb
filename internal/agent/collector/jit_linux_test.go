//go:build linux

package collector

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// nodeHotLoop spends its time in the JavaScript function hotLoopKprof, which V8
// compiles to machine code at run time.
const nodeHotLoop = `function hotLoopKprof(n) { let x = 0; for (let i = 0; i < n; i++) { x = (x * 31 + i) | 0 } return x }
let s = 0;
console.log("ready");
for (;;) { s += hotLoopKprof(1000000) }`

// TestProfilesNameJITCompiledCode profiles Node running with --perf-basic-prof: the
// JavaScript function it spends its time in is named in the profile, from the perf
// map V8 writes, in anonymous executable memory.
func TestProfilesNameJITCompiledCode(t *testing.T) {
	requireSampling(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed (apt-get install nodejs; hack/install-tools.sh does): %v", err)
	}
	c := openCollector(t, 99, nil)
	// --perf-basic-prof also writes a V8 log, by default in the working directory.
	v8log := "--logfile=" + filepath.Join(t.TempDir(), "v8.log")
	pid := startReady(t, node, "--perf-basic-prof", v8log, "--no-logfile-per-isolate", "-e", nodeHotLoop)
	t.Cleanup(func() { os.Remove(fmt.Sprintf("/tmp/perf-%d.map", pid)) })

	// V8 compiles the function in tiers as it runs; the process gets what a loaded
	// machine leaves it: wait until its optimized code shows.
	isJIT := func(f profile.Frame) bool {
		return strings.Contains(f.Function, "hotLoopKprof") && f.Mapping != nil && f.Mapping.File == profile.AnonMappingFile
	}
	collectUntil(t, c, pid, 10*time.Minute, isJIT)
}

// collectUntil collects intervals from c until one has a sample of pid with a frame
// that match accepts, and returns pid's samples so far; it fails after within.
func collectUntil(t *testing.T, c *Collector, pid int32, within time.Duration, match func(profile.Frame) bool) []profile.Sample {
	t.Helper()
	deadline := time.Now().Add(within)
	if _, err := c.Collect(); err != nil { // start a fresh interval
		t.Fatalf("Collect: %v", err)
	}
	var mine []profile.Sample
	for {
		time.Sleep(500 * time.Millisecond) // the interval's length; the loop polls for the frame
		ev, err := c.Collect()
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
		found := false
		for _, s := range ev.Samples {
			if s.PID != pid {
				continue
			}
			mine = append(mine, s)
			for _, f := range s.Frames {
				found = found || match(f)
			}
		}
		if found {
			t.Logf("%d samples of process %d", total(mine), pid)
			return mine
		}
		if time.Now().After(deadline) {
			logUnnamed(t, mine)
			t.Fatalf("no frame of process %d as wanted in %d samples in %s (it used %s of CPU)", pid, total(mine), within, cpuTime(t, pid))
		}
	}
}
