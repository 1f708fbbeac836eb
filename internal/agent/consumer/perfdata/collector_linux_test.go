//go:build linux

package perfdata

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/collector"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/testenv"
)

// burner spends its CPU in main.burn, a third of it in main.light.
const burner = `package main

import "time"

var sink uint64

//go:noinline
func burn(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*6364136223846793005 + uint64(i)
	}
	return x
}

//go:noinline
func light(n int) uint64 {
	x := uint64(n)
	for i := 0; i < n; i++ {
		x = x*2862933555777941757 + uint64(i)
	}
	return x
}

func main() {
	end := time.Now().Add(30 * time.Second)
	for time.Now().Before(end) {
		sink += burn(3_000_000) + light(1_000_000)
	}
}
`

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("sampling with eBPF needs root (CAP_BPF, CAP_PERFMON): run make test as root")
	}
}

// topLeaf is the function of the leaf IP (inlined frames collapsed) with the
// most samples.
func topLeaf(samples []profile.Sample) (string, uint64) {
	counts := map[string]uint64{}
	for _, s := range samples {
		if fr := ips(s.Frames); len(fr) > 0 {
			counts[fr[0].Function] += s.Count
		}
	}
	var top string
	for f, n := range counts {
		if n > counts[top] || (n == counts[top] && f < top) {
			top = f
		}
	}
	return top, counts[top]
}

func TestCollectedEventReportsSameTopSymbol(t *testing.T) {
	requireRoot(t)
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.go"), filepath.Join(dir, "burner")
	if err := os.WriteFile(src, []byte(burner), 0o600); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-o", bin, src)
	build.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build burner: %v\n%s", err, out)
	}
	sym, err := symbolize.New(symbolize.Config{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Config{
		Collection:  collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 499, Interval: time.Minute},
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
	// Collect once the burner has used a second of CPU, however loaded the
	// machine is (a fixed sleep gave it too little under load): ~500 samples
	// at 499 Hz.
	start := agenttest.CPUTime(t, cmd.Process.Pid)
	testenv.Eventually(t, time.Minute, func() (bool, string) {
		used := agenttest.CPUTime(t, cmd.Process.Pid) - start
		return used >= time.Second, fmt.Sprintf("the burner used %s of CPU, want 1s", used)
	})
	ev, err := c.Collect()
	if err != nil {
		t.Fatal(err)
	}
	pid := int32(cmd.Process.Pid)
	mine := *ev
	mine.Samples = nil
	for _, s := range ev.Samples {
		if s.PID == pid {
			mine.Samples = append(mine.Samples, s)
		}
	}
	want, n := topLeaf(mine.Samples)
	if n < 50 || want == "" {
		t.Fatalf("only %d samples of the burner's top leaf %q", n, want)
	}
	path := filepath.Join(dir, "perf.data")
	if err := (Writer{Path: path}).Write(&mine); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("PERFDATA_KEEP"); keep != "" {
		b, _ := os.ReadFile(path)
		os.WriteFile(keep, b, 0o600)
	}
	runPerf(t, "script", "-i", path)
	out := runPerf(t, "report", "-i", path, "--stdio", "--no-children", "--sort", "sym", "-g", "none")
	var top string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			top = l
			break
		}
	}
	f := strings.Fields(top)
	if len(f) < 3 || f[len(f)-1] != want {
		t.Fatalf("perf report top line %q, want symbol %s\n%s", top, want, out)
	}
	pct, _ := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
	var total uint64
	for _, s := range mine.Samples {
		total += s.Count
	}
	// perf symbolizes the mapped files itself: a rare address kprof left unnamed, or
	// attributed to an inlined callee, moves a fraction of a point, never the top symbol.
	if wantPct := 100 * float64(n) / float64(total); pct < wantPct-1 || pct > wantPct+1 {
		t.Errorf("perf report gives %s %.2f%%, kprof's counts %.2f%%", want, pct, wantPct)
	}
	t.Logf("top symbol %s: perf %.2f%%, kprof %d of %d samples", want, pct, n, total)
}
