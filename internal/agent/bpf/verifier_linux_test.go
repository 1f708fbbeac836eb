//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
)

// TestBothProgramsPassTheVerifier loads each program as Open would and logs the
// verifier's work (instructions processed), the complexity that decides whether
// a kernel accepts it (1 million at most).
func TestBothProgramsPassTheVerifier(t *testing.T) {
	requireSampling(t)
	if !kernelAtLeast(t, 5, 17) {
		t.Skip("the unwinder needs kernel 5.17 (bpf_loop)")
	}
	for _, p := range []program{unwinderProgram, framePointerProgram} {
		t.Run(p.String(), func(t *testing.T) {
			spec, err := programSpec(p)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{}
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := configureSpec(spec, &cfg, p); err != nil {
				t.Fatal(err)
			}
			var objs samplerObjects
			if err := spec.LoadAndAssign(&objs, &ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}}); err != nil {
				var ve *ebpf.VerifierError
				if errors.As(err, &ve) {
					t.Fatalf("loading the %s program: %+v", p, ve)
				}
				t.Fatalf("loading the %s program: %v", p, err)
			}
			defer objs.Close()
			info, err := objs.KprofSample.Info()
			if err != nil {
				t.Fatal(err)
			}
			n, ok := info.VerifiedInstructions()
			t.Logf("%s: verifier processed %d instructions (known: %v)", p, n, ok)
			// The kernel's memory accounting of each map, with the default sizes.
			var total uint64
			for name, m := range map[string]*ebpf.Map{
				"unwind_rows": objs.UnwindRows, "processes": objs.Processes, "unknown": objs.Unknown,
				"stacks0": objs.Stacks0, "stacks1": objs.Stacks1, "counts0": objs.Counts0, "counts1": objs.Counts1,
				"scratch": objs.Scratch, "stats": objs.Stats,
			} {
				b, err := os.ReadFile(fmt.Sprintf("/proc/self/fdinfo/%d", m.FD()))
				if err != nil {
					t.Fatal(err)
				}
				for line := range strings.SplitSeq(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "memlock:"); ok {
						n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
						total += n
						t.Logf("map %s: %.1f MiB", name, float64(n)/(1<<20))
					}
				}
			}
			t.Logf("%s: maps %.1f MiB in all", p, float64(total)/(1<<20))
			t.Logf("verifier log: %s", objs.KprofSample.VerifierLog)
		})
	}
}
