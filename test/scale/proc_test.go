//go:build scale

package scale

import (
	"bytes"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux
// architecture Go supports (the kernel ABI fixes it, whatever CONFIG_HZ is).
const userHZ = 100

// procSample is one reading of a process from /proc.
type procSample struct {
	rss, peak int64 // VmRSS, VmHWM in bytes
	cpu       time.Duration
	threads   int
}

func readProc(pid int) (procSample, error) {
	var s procSample
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	for line := range strings.SplitSeq(string(status), "\n") {
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(val)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fields[0], 10, 64)
		switch key {
		case "VmRSS":
			s.rss = n << 10
		case "VmHWM":
			s.peak = n << 10
		case "Threads":
			s.threads = int(n)
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	// The command name (field 2) may hold spaces; fields after it start at state (3).
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, fmt.Errorf("stat of pid %d: no command name", pid)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, fmt.Errorf("stat of pid %d: %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	s.cpu = time.Duration(utime+stime) * time.Second / userHZ
	return s, nil
}

// resetPeak makes VmHWM the current RSS (Linux ≥ 4.0), so a window's peak is its own.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// cmdline returns the arguments of pid.
func cmdline(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// findProcess returns the pid of the process whose program is named base and whose
// arguments include one containing every string of want; 0 when there is none.
func findProcess(base string, want ...string) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		args := cmdline(pid)
		if len(args) == 0 || filepath.Base(args[0]) != base {
			continue
		}
		found := 0
		for _, w := range want {
			for _, a := range args[1:] {
				if strings.Contains(a, w) {
					found++
					break
				}
			}
		}
		if found == len(want) {
			return pid
		}
	}
	return 0
}

// clusterProcesses finds the processes of the simulated cluster whose kubeconfig is kubeconfig
// and whose kube-apiserver serves host: kube-apiserver, etcd, kwok and metrics-server.
func clusterProcesses(host, kubeconfig string) []watched {
	var out []watched
	if u, err := url.Parse(host); err == nil {
		if pid := findProcess("kube-apiserver", "secure-port="+u.Port()); pid != 0 {
			out = append(out, watched{name: "kube-apiserver", pid: pid})
			for _, a := range cmdline(pid) {
				if etcd, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
					if pid := findProcess("etcd", strings.Split(etcd, ",")[0]); pid != 0 {
						out = append(out, watched{name: "etcd", pid: pid})
					}
				}
			}
		}
	}
	for _, name := range []string{"kwok", "metrics-server"} {
		if pid := findProcess(name, "--kubeconfig="+kubeconfig); pid != 0 {
			out = append(out, watched{name: name, pid: pid})
		}
	}
	return out
}

// watched is a process whose resources a window measures.
type watched struct {
	name string
	pid  int
}

// usage is what a process used over a window.
type usage struct {
	peak    int64 // largest RSS: VmHWM since the window began, or the largest sample
	endRSS  int64
	cpu     time.Duration
	cpuPct  float64 // of one core, over the window
	threads int
	rss     []int64 // one sample a second
	err     error
}

// sampler reads the processes' RSS every second from start until stop.
type sampler struct {
	procs   []watched
	began   time.Time
	start   map[int]procSample
	reset   map[int]bool // VmHWM was reset at the start: at the end it is the window's own peak
	mu      sync.Mutex
	maxRSS  map[int]int64
	series  map[int][]int64
	stopped chan struct{}
	done    chan struct{}
}

func startSampling(procs []watched) *sampler {
	s := &sampler{
		procs: procs, began: time.Now(), start: map[int]procSample{}, reset: map[int]bool{}, maxRSS: map[int]int64{}, series: map[int][]int64{},
		stopped: make(chan struct{}), done: make(chan struct{}),
	}
	for _, p := range procs {
		// Without a reset, VmHWM is the peak since the process started; the samples still bound the window's.
		s.reset[p.pid] = resetPeak(p.pid) == nil
		if ps, err := readProc(p.pid); err == nil {
			s.start[p.pid] = ps
			s.maxRSS[p.pid] = ps.rss
			s.series[p.pid] = []int64{ps.rss}
		}
	}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-s.stopped:
				return
			case <-tick.C:
			}
			for _, p := range procs {
				if ps, err := readProc(p.pid); err == nil {
					s.mu.Lock()
					s.maxRSS[p.pid] = max(s.maxRSS[p.pid], ps.rss)
					s.series[p.pid] = append(s.series[p.pid], ps.rss)
					s.mu.Unlock()
				}
			}
		}
	}()
	return s
}

// stop ends the window and returns each process's usage by name.
func (s *sampler) stop() map[string]usage {
	close(s.stopped)
	<-s.done
	elapsed := time.Since(s.began)
	out := map[string]usage{}
	for _, p := range s.procs {
		end, err := readProc(p.pid)
		start, ok := s.start[p.pid]
		if err == nil && !ok {
			err = fmt.Errorf("pid %d: no reading at the window's start", p.pid)
		}
		if err != nil {
			out[p.name] = usage{err: err}
			continue
		}
		s.mu.Lock()
		peak := max(s.maxRSS[p.pid], end.rss)
		series := append(s.series[p.pid], end.rss)
		s.mu.Unlock()
		if s.reset[p.pid] {
			peak = max(peak, end.peak)
		}
		cpu := end.cpu - start.cpu
		out[p.name] = usage{
			peak: peak, endRSS: end.rss, cpu: cpu, threads: end.threads,
			cpuPct: 100 * cpu.Seconds() / elapsed.Seconds(), rss: series,
		}
	}
	return out
}
