//go:build linux

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/collector"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
)

// childReport is what the collector child prints on stdout when it is done.
type childReport struct {
	Samples uint64 `json:"samples"`
	// BPFRunNs and BPFRuns are the run_time_ns and run_cnt of the child's BPF programs
	// (kernel.bpf_stats_enabled must be 1 while it runs).
	BPFRunNs uint64 `json:"bpfRunNs"`
	BPFRuns  uint64 `json:"bpfRuns"`
	// Workloads are the samples of each workload pid, and how many of them had the
	// workload's marker function in their stack.
	Workloads map[string]*stackCount `json:"workloads"`
}

type stackCount struct {
	Samples  uint64 `json:"samples"`
	Complete uint64 `json:"complete"`
}

// childOptions are the collector child's flags.
type childOptions struct {
	hz                     uint64
	d                      time.Duration
	cpuProfile, memProfile string
	workloads              string // pid=marker,...
}

// runCollector is the measured agent: one collector for d, then Shutdown; it prints
// a childReport.
func runCollector(o childOptions) int {
	if err := collect(o); err != nil {
		fmt.Fprintln(os.Stderr, "collector child:", err)
		return 1
	}
	return 0
}

func collect(o childOptions) error {
	if o.memProfile != "" {
		runtime.MemProfileRate = 4096
	}
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	rep := childReport{Workloads: map[string]*stackCount{}}
	markers, err := rep.addWorkloads(o.workloads)
	if err != nil {
		return err
	}
	var symLog *slog.Logger
	if os.Getenv("KPROF_BENCH_DEBUG") != "" {
		symLog = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	sym, err := symbolize.New(symbolize.Config{Logger: symLog})
	if err != nil {
		return err
	}
	var mu sync.Mutex
	c, err := collector.New(collector.Config{
		Collection: collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: o.hz, Interval: 10 * time.Second},
		Node:       "bench",
		Symbolizer: sym,
		Publish: func(ev *profile.Event) {
			mu.Lock()
			defer mu.Unlock()
			rep.count(ev, markers)
		},
		Logger:      slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		ExcludePIDs: []uint32{uint32(os.Getpid())},
	})
	if err != nil {
		return err
	}
	if err := c.Start(context.Background()); err != nil {
		return err
	}
	time.Sleep(o.d)
	rep.BPFRunNs, rep.BPFRuns = bpfStats()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Shutdown(ctx); err != nil {
		return err
	}
	if o.memProfile != "" {
		if err := writeAllocs(o.memProfile); err != nil {
			return err
		}
	}
	mu.Lock()
	defer mu.Unlock()
	return json.NewEncoder(os.Stdout).Encode(rep)
}

// addWorkloads adds a count of each workload of the -workloads flag
// (pid=marker,...) to rep, and returns the marker function of each pid.
func (rep *childReport) addWorkloads(workloads string) (map[int32]string, error) {
	markers := map[int32]string{}
	if workloads == "" {
		return markers, nil
	}
	for _, w := range strings.Split(workloads, ",") {
		pid, marker, _ := strings.Cut(w, "=")
		n, err := strconv.Atoi(pid)
		if err != nil {
			return nil, fmt.Errorf("-workloads %q: %w", workloads, err)
		}
		markers[int32(n)] = marker
		rep.Workloads[pid] = &stackCount{}
	}
	return markers, nil
}

// count adds ev's samples to rep: all of them, and per workload those of its
// pid and, of these, the ones whose stack reaches its marker function (complete).
func (rep *childReport) count(ev *profile.Event, markers map[int32]string) {
	rep.Samples += ev.Stats.Samples
	for _, s := range ev.Samples {
		marker, ok := markers[s.PID]
		if !ok {
			continue
		}
		w := rep.Workloads[strconv.Itoa(int(s.PID))]
		w.Samples += s.Count
		for _, f := range s.Frames {
			if f.Function == marker {
				w.Complete += s.Count
				break
			}
		}
	}
}

// bpfStats sums run_time_ns and run_cnt over this process's BPF programs, from the
// fdinfo of their file descriptors (the kernel counts them while
// kernel.bpf_stats_enabled is 1).
func bpfStats() (ns, runs uint64) {
	fds, _ := filepath.Glob("/proc/self/fdinfo/*")
	for _, p := range fds {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		var isProg bool
		var n, r uint64
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, ok := strings.Cut(sc.Text(), ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "prog_id":
				isProg = true
			case "run_time_ns":
				n, _ = strconv.ParseUint(v, 10, 64)
			case "run_cnt":
				r, _ = strconv.ParseUint(v, 10, 64)
			}
		}
		f.Close()
		if isProg {
			ns, runs = ns+n, runs+r
		}
	}
	return ns, runs
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup("allocs").WriteTo(f, 0)
}
