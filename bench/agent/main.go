//go:build linux

// Command agent measures what the node agent's collector costs: the CPU time and peak
// RSS of a process running one collector (cpu-clock, all CPUs, 10 s intervals,
// symbolized and labelled by pid) while every CPU is busy, at 19 Hz and 99 Hz, side by
// side in the same run with its peers at the same frequency: `perf record -a -g` and
// bpftrace aggregating {kstack, ustack, pid} in the kernel. It prints a table and the
// ratios kprof / peer. Needs root (CAP_BPF, CAP_PERFMON); perf and bpftrace from
// hack/install-perf.sh.
//
//	go run ./bench/agent [-seconds 60]
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/go-logr/logr"

	"github.com/kprof/kprof/internal/agent/collector"
	"github.com/kprof/kprof/internal/agent/config"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
)

func main() { os.Exit(run()) }

func run() int {
	seconds := flag.Int("seconds", 60, "how long each tool profiles")
	child := flag.String("child", "", "internal: run as the collector (\"collector\") or a busy loop (\"busy\")")
	hz := flag.Uint64("hz", 99, "internal: the collector child's frequency")
	cpuProfile := flag.String("cpuprofile", "", "internal: the collector child writes a CPU profile of itself here")
	memProfile := flag.String("memprofile", "", "internal: the collector child writes an allocation profile of itself here")
	flag.Parse()
	switch *child {
	case "collector":
		return runCollector(*hz, time.Duration(*seconds)*time.Second, *cpuProfile, *memProfile)
	case "busy":
		spin()
		return 0
	case "":
	default:
		fmt.Fprintf(os.Stderr, "unknown -child %q\n", *child)
		return 2
	}
	if err := bench(time.Duration(*seconds) * time.Second); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		return 1
	}
	return 0
}

// runCollector is the measured agent: one collector for d, then Shutdown.
func runCollector(hz uint64, d time.Duration, cpuProfile, memProfile string) int {
	if memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	if memProfile != "" {
		defer func() {
			if err := writeHeapProfile(memProfile); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		}()
	}
	var symLog logr.Logger
	if os.Getenv("KPROF_BENCH_DEBUG") != "" {
		symLog = logr.FromSlogHandler(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.Level(-4)}))
	}
	sym, err := symbolize.New(symbolize.Config{Logger: symLog})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var samples atomic.Uint64
	c, err := collector.New(collector.Config{
		Collection:  config.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: hz, Interval: 10 * time.Second},
		Node:        "bench",
		Symbolizer:  sym,
		Publish:     func(ev *profile.Event) { samples.Add(ev.Stats.Samples) },
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ExcludePIDs: []uint32{uint32(os.Getpid())},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if err := c.Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	time.Sleep(d)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println(samples.Load())
	return 0
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}

//go:noinline
func spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1
	}
}

type result struct {
	tool, note string
	hz         uint64
	cpu        time.Duration
	rssKiB     int64
	wall       time.Duration
}

func bench(d time.Duration) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	for _, tool := range []string{"perf", "bpftrace"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (hack/install-perf.sh): %w", tool, err)
		}
	}
	// Keep every CPU busy with a Go busy loop per CPU.
	for range runtime.NumCPU() {
		busy := exec.Command(self, "-child", "busy")
		if err := busy.Start(); err != nil {
			return err
		}
		defer func() { _ = busy.Process.Kill(); _ = busy.Wait() }()
	}
	tmp, err := os.MkdirTemp("", "kprof-bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	secs := strconv.Itoa(int(d.Seconds()))
	var results []result
	for _, hz := range []uint64{19, 99} {
		h := strconv.FormatUint(hz, 10)
		runs := []struct {
			tool string
			cmd  *exec.Cmd
		}{
			{"kprof collector", exec.Command(self, "-child", "collector", "-hz", h, "-seconds", secs)},
			{"perf record -a -g", exec.Command("perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", h,
				"-o", filepath.Join(tmp, "perf-"+h+".data"), "--", "sleep", secs)},
			{"bpftrace", exec.Command("bpftrace", "-e",
				"profile:hz:"+h+" { @[kstack, ustack, pid] = count(); } interval:s:"+secs+" { exit(); }")},
		}
		for _, r := range runs {
			res, err := measure(r.cmd)
			if err != nil {
				return fmt.Errorf("%s at %d Hz: %w", r.tool, hz, err)
			}
			res.tool, res.hz = r.tool, hz
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "%s at %d Hz: %.2f s CPU, %.1f MiB peak RSS, %s wall %s\n",
				r.tool, hz, res.cpu.Seconds(), float64(res.rssKiB)/1024, res.wall.Round(time.Millisecond), res.note)
		}
	}
	print(results, d)
	return nil
}

// measure runs cmd to its end and returns its CPU time (user + system, its waited-for
// children included) and peak RSS from wait4's rusage.
func measure(cmd *exec.Cmd) (result, error) {
	out, err := os.CreateTemp("", "kprof-bench-out-")
	if err != nil {
		return result{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return result{}, fmt.Errorf("%w: %s", err, tail(b))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res := result{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		rssKiB: ru.Maxrss,
		wall:   time.Since(start),
	}
	if b, err := os.ReadFile(out.Name()); err == nil && len(b) < 64 {
		res.note = "output " + string(b)
	}
	return res, nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

func print(results []result, d time.Duration) {
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Printf("\n%d CPUs busy, %s per run\n\n", runtime.NumCPU(), d)
	fmt.Fprintln(w, "tool\tHz\tCPU (s)\t% of one core\tpeak RSS (MiB)\tkprof/peer CPU\tkprof/peer RSS\t")
	for i, r := range results {
		k := results[i-i%3] // the kprof run at the same frequency
		ratio := func(a, b float64) string {
			if b == 0 {
				return "–"
			}
			return fmt.Sprintf("%.2fx", a/b)
		}
		cpuR, rssR := "–", "–"
		if r.tool != k.tool {
			cpuR, rssR = ratio(k.cpu.Seconds(), r.cpu.Seconds()), ratio(float64(k.rssKiB), float64(r.rssKiB))
		}
		fmt.Fprintf(w, "%s\t%d\t%.2f\t%.2f%%\t%.1f\t%s\t%s\t\n", r.tool, r.hz, r.cpu.Seconds(),
			100*r.cpu.Seconds()/d.Seconds(), float64(r.rssKiB)/1024, cpuR, rssR)
	}
	_ = w.Flush()
}
