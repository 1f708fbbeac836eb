//go:build linux

package perfdata

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/collector"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/testenv"
)

// noFP spends its time in spin_kprof, called by outer_kprof, called by main; built
// without frame pointers, only an unwind table links the three.
const noFP = `
#include <stdint.h>
#include <time.h>
volatile uint64_t sink;
__attribute__((noipa)) uint64_t spin_kprof(uint64_t n) {
	uint64_t x = n;
	for (uint64_t i = 0; i < n; i++) x = x * 6364136223846793005ULL + i;
	return x;
}
__attribute__((noipa)) uint64_t outer_kprof(uint64_t n) {
	uint64_t a[8] = {0};
	for (int i = 0; i < 8; i++) a[i] = spin_kprof(n + i);
	return a[0] ^ a[7];
}
int main(void) {
	time_t end = time(0) + 300;
	while (time(0) < end) sink += outer_kprof(200000);
	return 0;
}
`

// A stack of code without frame pointers, unwound in the kernel with the
// binary's .eh_frame table, reaches perf report whole: perf script shows
// spin_kprof ← outer_kprof ← main for the program's samples.
func TestANoFramePointerStackReachesPerfWhole(t *testing.T) {
	requireRoot(t)
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Fatalf("gcc not installed (apt-get install -y gcc): %v", err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "nofp.c"), filepath.Join(dir, "nofp")
	if err := os.WriteFile(src, []byte(noFP), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-O2", "-fomit-frame-pointer", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	sym, err := symbolize.New(symbolize.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Config{
		Collection:  collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 199, Interval: time.Minute},
		Symbolizer:  sym,
		Publish:     func(*profile.Event) {},
		ExcludePIDs: []uint32{uint32(os.Getpid())},
	})
	if err != nil {
		t.Fatalf("cannot open the collector here: %v", err)
	}
	t.Cleanup(func() { c.Shutdown(context.Background()) })
	cmd := exec.Command(bin)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	pid := int32(cmd.Process.Pid)

	// The loader learns of the program from its first samples and loads its table
	// within a tick; from then on its stacks are whole. Collect until 50 whole
	// stacks were seen (the intervals of a quick poll are short).
	want := []string{"spin_kprof", "outer_kprof", "main"}
	var mine profile.Event
	var whole, all uint64
	testenv.Eventually(t, 5*time.Minute, func() (bool, string) {
		ev, err := c.Collect()
		if err != nil {
			t.Fatal(err)
		}
		if mine.Start.IsZero() {
			mine = *ev
			mine.Samples = nil
		}
		mine.End = ev.End
		for _, s := range ev.Samples {
			if s.PID != pid {
				continue
			}
			mine.Samples = append(mine.Samples, s)
			all += s.Count
			if hasChain(s.Frames, want) {
				whole += s.Count
			}
		}
		return whole >= 50, fmt.Sprintf("%d of the program's %d samples have %v", whole, all, want)
	})
	t.Logf("kprof: %d of the program's %d samples have %v", whole, all, want)

	path := filepath.Join(dir, "perf.data")
	if err := (Writer{Path: path}).Write(&mine); err != nil {
		t.Fatal(err)
	}
	out := runPerf(t, "script", "-i", path, "-F", "comm,ip,sym")
	var inPerf, spin int
	for _, block := range strings.Split(out, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if len(lines) < 2 {
			continue
		}
		// The user frames of the callchain (kernel ones, of a sample taken in an
		// interrupt, come first and are skipped).
		var syms []string
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) >= 2 && !strings.HasPrefix(f[0], "ffffffff") {
				syms = append(syms, f[1])
			}
		}
		if len(syms) > 0 && syms[0] == "spin_kprof" {
			spin++
			if i := slices.Index(syms, "outer_kprof"); i > 0 && slices.Contains(syms[i:], "main") {
				inPerf++
			}
		}
	}
	if spin == 0 || inPerf == 0 {
		t.Fatalf("perf script: %d of %d samples in spin_kprof reach outer_kprof and main, want them whole:\n%.3000s", inPerf, spin, out)
	}
	t.Logf("perf script: %d of %d sampled stacks in spin_kprof reach outer_kprof and main", inPerf, spin)
}

// hasChain reports whether frames (leaf first) hold names in order, leaf first.
func hasChain(frames []profile.Frame, names []string) bool {
	i := 0
	for _, f := range frames {
		if i < len(names) && f.Function == names[i] {
			i++
		}
	}
	return i == len(names)
}
