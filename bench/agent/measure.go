//go:build linux

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// measure runs cmd to its end and returns its CPU time (user + system, its waited-for
// children included), peak RSS from wait4's rusage, and its standard output.
func measure(cmd *exec.Cmd) (result, []byte, error) {
	var stdout bytes.Buffer
	errf, err := os.CreateTemp("", "kprof-bench-err-")
	if err != nil {
		return result{}, nil, err
	}
	defer os.Remove(errf.Name())
	defer errf.Close()
	cmd.Stdout, cmd.Stderr = &stdout, errf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(errf.Name())
		return result{}, nil, fmt.Errorf("%w: %s%s", err, tail(stdout.Bytes()), tail(b))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return result{
		cpu:    time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		rssKiB: ru.Maxrss,
		wall:   time.Since(start),
	}, stdout.Bytes(), nil
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// kprofReport fills res from the collector child's report.
func kprofReport(res *result, out []byte, sc scenario, pids []string) error {
	var rep childReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return fmt.Errorf("the collector child's report %q: %w", out, err)
	}
	res.bpf, res.bpfRuns = time.Duration(rep.BPFRunNs), rep.BPFRuns
	res.note = fmt.Sprintf("%d samples", rep.Samples)
	idx := workloadIndex(sc, pids)
	for pid, c := range rep.Workloads {
		n, _ := strconv.Atoi(pid)
		i := idx[n]
		if res.samples[i] < 0 {
			res.samples[i] = 0
		}
		res.samples[i] += int64(c.Samples)
		res.complete[i] += int64(c.Complete)
	}
	return nil
}

// perfComplete counts, with perf script, the samples of each workload in data and
// those whose stack holds the workload's marker function.
func perfComplete(res *result, data string, sc scenario, pids []string) error {
	idx := workloadIndex(sc, pids)
	cmd := exec.Command("perf", "script", "-i", data, "-F", "pid,ip,sym")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	for i := range res.samples {
		res.samples[i] = 0
	}
	cur, complete := -1, false
	end := func() {
		if cur >= 0 {
			res.samples[cur]++
			if complete {
				res.complete[cur]++
			}
		}
		cur, complete = -1, false
	}
	sc2 := bufio.NewScanner(out)
	sc2.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc2.Scan() {
		line := sc2.Text()
		switch {
		case strings.TrimSpace(line) == "":
			end()
		case line[0] == '\t':
			// "\t    ffffffff81000000 sym"
			f := strings.Fields(line)
			if cur >= 0 && len(f) >= 2 && f[1] == sc.workloads[cur].marker {
				complete = true
			}
		default:
			end()
			f := strings.Fields(line)
			if len(f) > 0 {
				if pid, err := strconv.Atoi(f[0]); err == nil {
					if i, ok := idx[pid]; ok {
						cur = i
					}
				}
			}
		}
	}
	end()
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("%w: %s", err, tail(stderr.Bytes()))
	}
	return nil
}

func print(sc scenario, results []result, d time.Duration, floorKiB int64) {
	fmt.Printf("\nscenario %s — %s\n", sc.name, sc.desc)
	fmt.Printf("%d CPUs busy, %s per run; cost = process CPU (user+sys) + in-kernel BPF run time; ", len(sc.workloads), d)
	fmt.Printf("peak RSS = ru_maxrss (floor %.1f MiB: the benchmark's own)\n\n", float64(floorKiB)/1024)
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	head := "tool\tHz\tCPU (s)\tBPF (s)\tcost (s)\t% of one core\tpeak RSS (MiB)\toutput (MiB)\t"
	for _, wl := range sc.workloads {
		head += "complete " + wl.name + "\t"
	}
	head += "kprof/peer cost\tkprof/peer RSS\t"
	fmt.Fprintln(w, head)
	for _, r := range results {
		var k result // the kprof run at the same frequency
		for _, c := range results {
			if c.hz == r.hz && c.tool == "kprof collector" {
				k = c
			}
		}
		ratio := func(a, b float64) string {
			if b == 0 || k.tool == "" || r.tool == k.tool {
				return "–"
			}
			return fmt.Sprintf("%.2fx", a/b)
		}
		out, bpf := "–", "–"
		if r.outBytes > 0 {
			out = fmt.Sprintf("%.1f", float64(r.outBytes)/(1<<20))
		}
		if r.tool == "kprof collector" {
			bpf = fmt.Sprintf("%.3f", r.bpf.Seconds())
		}
		line := fmt.Sprintf("%s\t%d\t%.2f\t%s\t%.2f\t%.2f%%\t%.1f\t%s\t", r.tool, r.hz, r.cpu.Seconds(), bpf,
			r.cost().Seconds(), 100*r.cost().Seconds()/d.Seconds(), float64(r.rssKiB)/1024, out)
		for i := range sc.workloads {
			if r.samples[i] <= 0 {
				line += "–\t"
				continue
			}
			line += fmt.Sprintf("%.0f%% of %d\t", 100*float64(r.complete[i])/float64(r.samples[i]), r.samples[i])
		}
		line += ratio(k.cost().Seconds(), r.cost().Seconds()) + "\t" + ratio(float64(k.rssKiB), float64(r.rssKiB)) + "\t"
		fmt.Fprintln(w, line)
	}
	_ = w.Flush()
	for _, r := range results {
		if r.tool == "kprof collector" {
			fmt.Printf("kprof at %d Hz: %s, BPF program ran %d times, %.0f ns each\n", r.hz, r.note, r.bpfRuns,
				float64(r.bpf.Nanoseconds())/float64(max(r.bpfRuns, 1)))
		}
	}
}
