//go:build linux

package perfdata

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/consumer/perfdata/perfdatatest"
	"github.com/kprof/kprof/internal/agent/profile"
)

// target is a real program: it prints its pid and the entry addresses of
// hot, cold and main, then waits for stdin to close.
const target = `package main

import (
	"fmt"
	"os"
	"reflect"
)

//go:noinline
func hot(n int) int {
	for i := 0; i < n; i++ {
		n ^= i
	}
	return n
}

//go:noinline
func cold(n int) int { return n*3 + 1 }

func main() {
	fmt.Println(os.Getpid(), reflect.ValueOf(hot).Pointer(), reflect.ValueOf(cold).Pointer(), reflect.ValueOf(main).Pointer(), hot(3)+cold(2))
	os.Stdin.Read(make([]byte, 1))
}
`

// startTarget builds and starts target and returns its pid and the entry
// addresses of hot, cold and main.
func startTarget(t *testing.T) (pid int32, hot, cold, main uint64) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not in PATH: %v", err)
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.go"), filepath.Join(dir, "busytarget")
	if err := os.WriteFile(src, []byte(target), 0o600); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(goTool, "build", "-o", bin, src)
	build.Dir = dir
	build.Env = append(os.Environ(), "GOFLAGS=", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build target: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read target output: %v", err)
	}
	var p int32
	var h, c, m, x uint64
	if _, err := fmt.Sscan(line, &p, &h, &c, &m, &x); err != nil {
		t.Fatalf("parse target output %q: %v", line, err)
	}
	return p, h, c, m
}

// procMapping returns the mapping of pid that holds addr, from /proc/PID/maps.
func procMapping(t *testing.T, pid int32, addr uint64) *profile.Mapping {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 6 {
			continue
		}
		lo, hi, _ := strings.Cut(fs[0], "-")
		start, _ := strconv.ParseUint(lo, 16, 64)
		limit, _ := strconv.ParseUint(hi, 16, 64)
		off, _ := strconv.ParseUint(fs[2], 16, 64)
		if addr >= start && addr < limit {
			return &profile.Mapping{Start: start, Limit: limit, Offset: off, File: fs[5]}
		}
	}
	t.Fatalf("no mapping of pid %d holds %#x", pid, addr)
	return nil
}

func kernelSymbol(t *testing.T, name string) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/kallsyms")
	if err != nil {
		t.Skipf("cannot read /proc/kallsyms: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		fs := strings.Fields(l)
		if len(fs) >= 3 && fs[2] == name {
			a, _ := strconv.ParseUint(fs[0], 16, 64)
			if a == 0 {
				t.Skip("kernel addresses are hidden (kptr_restrict)")
			}
			return a
		}
	}
	t.Skipf("kernel symbol %s not found", name)
	return 0
}

// realEvent is an event of a real running process: hot 7 times, cold
// 2 times (with an inlined duplicate frame), one stack through the kernel.
func realEvent(t *testing.T) *profile.Event {
	t.Helper()
	pid, h, c, m := startTarget(t)
	frame := func(addr uint64, fn string) profile.Frame {
		return profile.Frame{Address: addr + 1, Function: fn, Mapping: procMapping(t, pid, addr)}
	}
	hot, cold, caller := frame(h, "main.hot"), frame(c, "main.cold"), frame(m, "main.main")
	k := profile.Frame{Address: kernelSymbol(t, "do_syscall_64") + 8, Kernel: true, Function: "do_syscall_64"}
	labels := map[string]string{"comm": "busytarget"}
	start := time.Now().Add(-time.Second)
	return &profile.Event{
		Config: "c", EventName: "cpu-clock", Frequency: 99, Start: start, End: start.Add(time.Second),
		Samples: []profile.Sample{
			{PID: pid, TID: pid, Frames: []profile.Frame{hot, caller}, Count: 7, Labels: labels},
			{PID: pid, TID: pid, Frames: []profile.Frame{cold, cold, caller}, Count: 2, Labels: labels},
			{PID: pid, TID: pid, Frames: []profile.Frame{k, caller}, Count: 1, Labels: labels},
		},
	}
}

func writeSelf(t *testing.T) (string, *profile.Event) {
	ev := realEvent(t)
	path := filepath.Join(t.TempDir(), "perf.data")
	if err := (Writer{Path: path}).Write(ev); err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("PERFDATA_KEEP"); keep != "" {
		b, _ := os.ReadFile(path)
		os.WriteFile(keep, b, 0o600)
	}
	return path, ev
}

func runPerf(t *testing.T, args ...string) string {
	t.Helper()
	perf, err := exec.LookPath("perf")
	if err != nil {
		t.Fatalf("perf not installed (hack/install-perf.sh): %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(perf, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "PERF_PAGER=cat")
	if err := cmd.Run(); err != nil {
		t.Fatalf("perf %s: %v\nstderr:\n%s", strings.Join(args, " "), err, stderr.String())
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		for _, bad := range []string{"warning", "corrupt", "failed", "invalid"} {
			if strings.Contains(strings.ToLower(l), bad) {
				t.Errorf("perf %s stderr: %s", args[0], l)
			}
		}
	}
	return stdout.String()
}

func TestPerfReadsWrittenFile(t *testing.T) {
	path, ev := writeSelf(t)
	t.Run("perf script prints every sample", func(t *testing.T) {
		out := runPerf(t, "script", "-i", path)
		t.Log(out)
		if n := strings.Count(out, "cpu-clock"); n != 3 {
			t.Errorf("perf script printed %d samples, want 3", n)
		}
		if !strings.Contains(out, "main.hot") {
			t.Errorf("perf script did not symbolize main.hot")
		}
	})
	t.Run("perf report top symbol is the top leaf", func(t *testing.T) {
		out := runPerf(t, "report", "-i", path, "--stdio", "--no-children", "--sort", "comm,dso,sym")
		t.Log(out)
		var top string
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSpace(l)
			if l == "" || strings.HasPrefix(l, "#") {
				continue
			}
			top = l
			break
		}
		want := ev.Samples[0].Frames[0].Function
		if !strings.Contains(top, "70.00%") || !strings.HasSuffix(top, want) {
			t.Errorf("top line %q, want 70.00%% of %s", top, want)
		}
		if !strings.Contains(out, "10.00%") || !strings.Contains(out, "[k] do_syscall_64") {
			t.Errorf("perf report does not resolve the kernel frame through [kernel.kallsyms]_text")
		}
	})
}

func TestPerfReadsConsumerFileOfTwoEvents(t *testing.T) {
	dir := t.TempDir()
	c, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ev := realEvent(t)
	next := *ev
	next.Start, next.End = ev.End, ev.End.Add(time.Second)
	ctx := context.Background()
	for _, e := range []*profile.Event{ev, &next} {
		if err := c.Consume(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "perf-*.data"))
	if len(files) != 1 {
		t.Fatalf("%d files, want 1", len(files))
	}
	out := runPerf(t, "script", "-i", files[0])
	if n := strings.Count(out, "cpu-clock"); n != 6 {
		t.Errorf("perf script printed %d samples, want 6", n)
	}
}

func TestPerfReadsSampleWithCappedDeepStack(t *testing.T) {
	ev := realEvent(t)
	s := &ev.Samples[0]
	for len(s.Frames) < 10_000 {
		s.Frames = append(s.Frames, s.Frames[len(s.Frames)-1])
		s.Frames[len(s.Frames)-1].Address++
	}
	path := filepath.Join(t.TempDir(), "perf.data")
	if err := (Writer{Path: path}).Write(ev); err != nil {
		t.Fatal(err)
	}
	f, err := perfdatatest.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(f.Samples[0].Callchain); n < 8000 || 8*(n+7) > maxRecord {
		t.Errorf("callchain of %d entries, want capped below the record limit", n)
	} else {
		t.Logf("callchain capped at %d entries", n)
	}
	runPerf(t, "script", "-i", path)
}
