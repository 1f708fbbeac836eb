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

	// V8 compiles the function in tiers as it runs: measure until its optimized code
	// shows, for at most 20 s of Node's CPU time.
	var mine []profile.Sample
	for try := 1; ; try++ {
		mine = profileOnce(t, c, pid, time.Second) // stackless samples (stack-map collisions) are just skipped
		var jit, named uint64
		for _, s := range mine {
			for _, f := range s.Frames {
				if strings.Contains(f.Function, "hotLoopKprof") {
					named += s.Count
					if f.Mapping != nil && f.Mapping.File == profile.AnonMappingFile {
						jit += s.Count
					}
					break
				}
			}
		}
		t.Logf("measurement %d: %d samples, %d with hotLoopKprof, %d of them in %s", try, total(mine), named, jit, profile.AnonMappingFile)
		if jit > 0 {
			return
		}
		if try == 20 {
			logUnnamed(t, mine)
			t.Fatalf("no sample of node %d has hotLoopKprof in JIT code (a %s mapping) after %d measurements", pid, profile.AnonMappingFile, try)
		}
	}
}
