//go:build linux

// Command agent measures what the node agent's collector costs against perf record,
// side by side in one run, on workloads with frame pointers and without, at 19 Hz and
// 99 Hz (cpu-clock, all CPUs):
//
//   - scenario fp: a Go busy loop and a C program built with -fno-omit-frame-pointer
//     (four calls deep), one per CPU;
//   - scenario nofp: the same C program built with -fomit-frame-pointer and a
//     python3.11 loop four Python calls deep (CPython is built without frame pointers).
//
// In each, one after the other: a child running one kprof collector (10 s intervals,
// drained every second, symbolized, pid labels, its own pid excluded); `perf record -a
// -g`; `perf record -a --call-graph dwarf`; with -bpftrace also bpftrace aggregating
// {kstack, ustack, pid} in the kernel. A tool's cost is its process's CPU time (user +
// system, wait4) and, for kprof, the run time of its BPF program, which runs in the
// sampled task's context (kernel.bpf_stats_enabled is set to 1 for the run and
// restored); peak RSS is ru_maxrss. perf's in-kernel work (copying a stack, 8 KiB of it
// per sample with dwarf) is not in its figure. For every tool it also prints how many
// of each workload's samples have a complete stack (the workload's outermost named
// function, main, main.main or Py_BytesMain, is in it; perf's from perf script, after
// the timed run) and the ratios kprof / peer. Needs root (CAP_BPF, CAP_PERFMON), perf
// (hack/install-perf.sh), gcc and /usr/bin/python3.11.
//
//	go run ./bench/agent [-seconds 60] [-hz 19,99] [-scenarios fp,nofp] [-bpftrace]
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() { os.Exit(run()) }

func run() int {
	seconds := flag.Int("seconds", 60, "how long each tool profiles")
	hzList := flag.String("hz", "19,99", "the sampling frequencies, comma-separated")
	scenarioList := flag.String("scenarios", "fp,nofp", "the workloads: fp (frame pointers), nofp (none), comma-separated")
	withBpftrace := flag.Bool("bpftrace", false, "also run bpftrace aggregating {kstack, ustack, pid} in the kernel")
	perfScript := flag.Bool("perf-script", true, "count perf's complete stacks with perf script after each perf run (not timed)")
	profDir := flag.String("profile-dir", "", "write the collector child's CPU and allocation profiles (go tool pprof) here")
	child := flag.String("child", "", "internal: run as the collector (\"collector\") or a busy loop (\"busy\")")
	hz := flag.Uint64("hz-child", 99, "internal: the collector child's frequency")
	cpuProfile := flag.String("cpuprofile", "", "internal: the collector child writes a CPU profile of itself here")
	memProfile := flag.String("memprofile", "", "internal: the collector child writes an allocation profile of itself here")
	workloads := flag.String("workloads", "", "internal: the collector child's workload pids and markers, pid=function,...")
	flag.Parse()
	switch *child {
	case "collector":
		return runCollector(childOptions{hz: *hz, d: time.Duration(*seconds) * time.Second,
			cpuProfile: *cpuProfile, memProfile: *memProfile, workloads: *workloads})
	case "busy":
		spin()
		return 0
	case "":
	default:
		fmt.Fprintf(os.Stderr, "unknown -child %q\n", *child)
		return 2
	}
	var hzs []uint64
	for _, s := range strings.Split(*hzList, ",") {
		h, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
		if err != nil || h == 0 {
			fmt.Fprintf(os.Stderr, "-hz %q: want frequencies like 19,99\n", *hzList)
			return 2
		}
		hzs = append(hzs, h)
	}
	o := benchOptions{d: time.Duration(*seconds) * time.Second, hzs: hzs, scenarios: strings.Split(*scenarioList, ","),
		bpftrace: *withBpftrace, perfScript: *perfScript, profDir: *profDir}
	if err := bench(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench/agent:", err)
		return 1
	}
	return 0
}

//go:noinline
func spin() {
	x := uint64(1)
	for {
		x = x*6364136223846793005 + 1
	}
}

type benchOptions struct {
	d                    time.Duration
	hzs                  []uint64
	scenarios            []string
	bpftrace, perfScript bool
	profDir              string
}

// result is one tool's run at one frequency in one scenario.
type result struct {
	tool, note string
	hz         uint64
	cpu, bpf   time.Duration
	bpfRuns    uint64
	rssKiB     int64
	wall       time.Duration
	outBytes   int64 // perf.data
	// complete and samples, per workload (in the scenario's order); samples -1: not counted.
	complete, samples []int64
}

func (r result) cost() time.Duration { return r.cpu + r.bpf }

const bpfStatsSysctl = "/proc/sys/kernel/bpf_stats_enabled"

func bench(o benchOptions) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	tools := []string{"perf"}
	if o.bpftrace {
		tools = append(tools, "bpftrace")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (hack/install-perf.sh): %w", tool, err)
		}
	}
	restore, err := enableBPFStats()
	if err != nil {
		return err
	}
	defer restore()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		restore() // the children die with us (Pdeathsig)
		os.Exit(130)
	}()
	tmp, err := os.MkdirTemp("", "kprof-bench-agent-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	scs, err := scenarios(self, tmp, o.scenarios)
	if err != nil {
		return err
	}
	floor := selfHWM()
	for _, sc := range scs {
		results, err := runScenario(self, tmp, sc, o)
		if err != nil {
			return fmt.Errorf("scenario %s: %w", sc.name, err)
		}
		print(sc, results, o.d, floor)
	}
	return nil
}

// enableBPFStats sets kernel.bpf_stats_enabled to 1 and returns what restores it.
func enableBPFStats() (func(), error) {
	old, err := os.ReadFile(bpfStatsSysctl)
	if err != nil {
		return nil, fmt.Errorf("reading kernel.bpf_stats_enabled: %w", err)
	}
	if err := os.WriteFile(bpfStatsSysctl, []byte("1"), 0); err != nil {
		return nil, fmt.Errorf("enabling kernel.bpf_stats_enabled (root needed): %w", err)
	}
	return func() { _ = os.WriteFile(bpfStatsSysctl, []byte(strings.TrimSpace(string(old))), 0) }, nil
}

func runScenario(self, tmp string, sc scenario, o benchOptions) ([]result, error) {
	var pids []string
	for _, w := range sc.workloads {
		for range max(1, runtime.NumCPU()/len(sc.workloads)) {
			cmd := w.cmd()
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				return nil, fmt.Errorf("starting %s: %w", w.name, err)
			}
			defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
			pids = append(pids, fmt.Sprintf("%d=%s", cmd.Process.Pid, w.marker))
		}
	}
	// The workloads' pids, in the order of sc.workloads (several per workload on
	// machines with more CPUs).
	secs := strconv.Itoa(int(o.d.Seconds()))
	var results []result
	for _, hz := range o.hzs {
		h := strconv.FormatUint(hz, 10)
		kargs := []string{"-child", "collector", "-hz-child", h, "-seconds", secs, "-workloads", strings.Join(pids, ",")}
		if o.profDir != "" {
			base := filepath.Join(o.profDir, sc.name+"-"+h)
			kargs = append(kargs, "-cpuprofile", base+".cpu.pprof", "-memprofile", base+".allocs.pprof")
		}
		perfG := filepath.Join(tmp, "perf-g.data")
		perfDwarf := filepath.Join(tmp, "perf-dwarf.data")
		runs := []struct {
			tool, data string
			cmd        *exec.Cmd
		}{
			{"kprof collector", "", exec.Command(self, kargs...)},
			{"perf record -a -g", perfG, exec.Command("perf", "record", "-q", "-a", "-g", "-e", "cpu-clock", "-F", h,
				"-o", perfG, "--", "sleep", secs)},
			{"perf record -a --call-graph dwarf", perfDwarf, exec.Command("perf", "record", "-q", "-a", "--call-graph", "dwarf",
				"-e", "cpu-clock", "-F", h, "-o", perfDwarf, "--", "sleep", secs)},
		}
		if o.bpftrace {
			runs = append(runs, struct {
				tool, data string
				cmd        *exec.Cmd
			}{"bpftrace", "", exec.Command("bpftrace", "-e",
				"profile:hz:"+h+" { @[kstack, ustack, pid] = count(); } interval:s:"+secs+" { exit(); }")})
		}
		for _, r := range runs {
			res, out, err := measure(r.cmd)
			if err != nil {
				return nil, fmt.Errorf("%s at %d Hz: %w", r.tool, hz, err)
			}
			res.tool, res.hz = r.tool, hz
			res.complete = make([]int64, len(sc.workloads))
			res.samples = make([]int64, len(sc.workloads))
			for i := range res.samples {
				res.samples[i] = -1
			}
			switch {
			case r.tool == "kprof collector":
				if err := kprofReport(&res, out, sc, pids); err != nil {
					return nil, err
				}
			case r.data != "":
				if st, err := os.Stat(r.data); err == nil {
					res.outBytes = st.Size()
				}
				if o.perfScript {
					if err := perfComplete(&res, r.data, sc, pids); err != nil {
						return nil, fmt.Errorf("perf script of %s: %w", r.tool, err)
					}
				}
				_ = os.Remove(r.data)
			}
			results = append(results, res)
			fmt.Fprintf(os.Stderr, "%s: %s at %d Hz: %.2f s CPU + %.3f s BPF, %.1f MiB peak RSS, wall %s\n",
				sc.name, r.tool, hz, res.cpu.Seconds(), res.bpf.Seconds(), float64(res.rssKiB)/1024, res.wall.Round(time.Millisecond))
		}
	}
	return results, nil
}

// workloadIndex maps the workload pids (pid=marker) to their workload's index in sc.
func workloadIndex(sc scenario, pids []string) map[int]int {
	idx := map[int]int{}
	per := len(pids) / len(sc.workloads)
	for i, p := range pids {
		pid, _, _ := strings.Cut(p, "=")
		n, _ := strconv.Atoi(pid)
		idx[n] = min(i/max(per, 1), len(sc.workloads)-1)
	}
	return idx
}

// selfHWM is this process's peak RSS: a child's ru_maxrss cannot read below it
// (exec folds the parent's high-water mark into the vfork child's).
func selfHWM() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}
