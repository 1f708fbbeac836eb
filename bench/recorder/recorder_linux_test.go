//go:build linux

// Package recorder measures what the agent's flight recorder costs: the real
// `kprof agent` (eBPF cpu-clock sampler, 99 Hz, 1 s intervals, pods from a
// simulated cluster) on a node of 110 pods, each a low-CPU burner process in a
// real cgroup v1 whose path carries its kwok pod's UID, run with the recorder
// on (--recorder-window=30s, its endpoint listening) and off
// (--recorder-window=0), both at once (same node, same load: each samples the
// other too), measured over -seconds after -warmup. It prints the agents' CPU
// time, RSS and heap side by side with the ratios, and what the recorder held
// (its gauges). Needs root (CAP_BPF, CAP_PERFMON), envtest and kwok (make tools).
//
//	go test -bench . -benchtime 1x -run '^$' ./bench/recorder/ [-args -seconds 60 -rounds 2]
package recorder

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/testenv"
)

var (
	seconds = flag.Int("seconds", 60, "how long the agent is measured in each mode per round, after -warmup")
	warmup  = flag.Int("warmup", 20, "seconds the agent runs before it is measured (symbols load, the window fills)")
	rounds  = flag.Int("rounds", 2, "rounds of (off and on at once)")
	pods    = flag.Int("pods", 110, "pods on the simulated node")
)

// burnEnv makes this test binary a burner: "<cgroup.procs file>,<stack depth>".
const burnEnv = "KPROF_BENCH_RECORDER_BURN"

func TestMain(m *testing.M) {
	if v := os.Getenv(burnEnv); v != "" {
		os.Exit(burn(v))
	}
	os.Exit(m.Run())
}

// burn moves this process into the cgroup and uses about 0.5 % of a CPU (0.5 ms
// of work every 100 ms) in a stack of the given depth, until its parent is gone.
func burn(v string) int {
	procs, d, _ := strings.Cut(v, ",")
	depth, _ := strconv.Atoi(d)
	if err := os.WriteFile(procs, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		fmt.Fprintf(os.Stderr, "move burner into %s: %v\n", procs, err)
		return 2
	}
	fmt.Println("ready")
	parent := os.Getppid()
	for os.Getppid() == parent {
		benchFrame(depth, time.Now().Add(500*time.Microsecond))
		time.Sleep(100 * time.Millisecond)
	}
	return 0
}

var sink uint64

//go:noinline
func benchFrame(depth int, until time.Time) {
	if depth > 0 {
		benchFrame(depth-1, until)
		return
	}
	benchHot(until)
}

//go:noinline
func benchHot(until time.Time) {
	x := sink
	for time.Now().Before(until) {
		for range 1000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	sink = x
}

type run struct {
	mode          string
	cpu           time.Duration // whole run: startup, warmup, measure, shutdown
	steadyCPU     time.Duration // during the measured seconds
	rssKiB        int64         // peak
	endRSS        float64       // bytes, at the end of the measured seconds
	heapInuse     float64       // bytes, at the end of the measured seconds
	recorderBytes float64
	recorderPods  float64
	samples       float64
}

func BenchmarkAgentWithAndWithoutFlightRecorder(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root (CAP_BPF, CAP_PERFMON) for the agent's eBPF sampler and the cgroups")
	}
	d := time.Duration(*seconds) * time.Second
	dir := b.TempDir()
	kprof := filepath.Join(dir, "kprof")
	build := exec.Command("go", "build", "-o", kprof, "./cmd/kprof")
	build.Dir = testenv.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("go build ./cmd/kprof: %v\n%s", err, out)
	}
	cluster := testenv.StartCluster(b, testenv.ClusterOptions{WithoutMetricsServer: true})
	node := cluster.Nodes[0]
	const ns = "bench"
	specs := make([]testenv.PodSpec, *pods)
	for i := range specs {
		specs[i] = testenv.PodSpec{Namespace: ns, Name: fmt.Sprintf("app-%03d", i), Node: node}
	}
	cluster.CreatePods(b, specs, 16)
	cluster.WaitPodsRunning(b, ns, *pods, 5*time.Minute)
	var list corev1.PodList
	if err := cluster.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		b.Fatal(err)
	}
	mnt := cpuacctMount(b)
	top := filepath.Join(mnt, "kprof-bench-recorder-"+randomHex(b, 12))
	// The shared parents go last, once every pod's cgroup is gone.
	b.Cleanup(func() {
		for _, d := range []string{filepath.Join(top, "kubepods", "burstable"), filepath.Join(top, "kubepods"), top} {
			removeCgroup(b, d)
		}
	})
	for i, p := range list.Items {
		startBurner(b, top, string(p.UID), i%8)
	}
	configDir := filepath.Join(dir, "configs")
	if err := os.MkdirAll(configDir, 0o755); err != nil {
		b.Fatal(err)
	}
	cfg := "name: cpu\nversion: 1\nspec:\n  event: cpu-clock\n  frequency: 99\n  intervalSeconds: 1\n"
	if err := os.WriteFile(filepath.Join(configDir, "cpu.yaml"), []byte(cfg), 0o644); err != nil {
		b.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("bench\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	args := []string{"agent", "--config-dir", configDir, "--kubeconfig", cluster.Kubeconfig, "--node-name", node,
		"--health-probe-bind-address", "0", "--enable-debug-consumer=false", "--recorder-token-file", tokenFile}

	b.ResetTimer()
	var runs []run
	for range b.N {
		for r := range *rounds {
			res, err := measureSideBySide(kprof, args, d)
			if err != nil {
				b.Fatalf("round %d: %v", r+1, err)
			}
			for _, res := range res {
				runs = append(runs, res)
				fmt.Fprintf(os.Stderr, "round %d, recorder %s: %.2f s CPU (%.2f s measured), %.1f MiB peak RSS, %.1f MiB RSS and %.1f MiB heap at the end, recorder %.0f bytes for %.0f pods, %.0f samples\n",
					r+1, res.mode, res.cpu.Seconds(), res.steadyCPU.Seconds(), float64(res.rssKiB)/1024, res.endRSS/(1<<20), res.heapInuse/(1<<20),
					res.recorderBytes, res.recorderPods, res.samples)
			}
		}
	}
	b.StopTimer()
	on, off := mean(runs, "on"), mean(runs, "off")
	b.ReportMetric(on.steadyCPU.Seconds()/off.steadyCPU.Seconds(), "cpu-on/off")
	b.ReportMetric(on.endRSS/off.endRSS, "rss-on/off")
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Printf("\nkprof agent on a node of %d pods (low-CPU burners in real pod cgroups), cpu-clock 99 Hz, 1 s intervals, recorder off and on "+
		"side by side, measured %s after %ds of warmup, mean of %d round(s)\n\n", *pods, d, *warmup, *rounds)
	fmt.Fprintln(w, "recorder\tCPU measured (s)\t% of one core\tCPU whole run (s)\tRSS at end (MiB)\theap in use (MiB)\tpeak RSS (MiB)\trecorder bytes\trecorder pods\t")
	for _, r := range []run{off, on} {
		fmt.Fprintf(w, "%s\t%.2f\t%.2f%%\t%.2f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t\n", r.mode, r.steadyCPU.Seconds(), 100*r.steadyCPU.Seconds()/d.Seconds(),
			r.cpu.Seconds(), r.endRSS/(1<<20), r.heapInuse/(1<<20), float64(r.rssKiB)/1024, r.recorderBytes, r.recorderPods)
	}
	fmt.Fprintf(w, "on/off\t%.2fx\t\t%.2fx\t%.2fx\t%.2fx\t%.2fx\t\t\t\n", on.steadyCPU.Seconds()/off.steadyCPU.Seconds(), on.cpu.Seconds()/off.cpu.Seconds(),
		on.endRSS/off.endRSS, on.heapInuse/off.heapInuse, float64(on.rssKiB)/float64(off.rssKiB))
	_ = w.Flush()
}

func mean(runs []run, mode string) run {
	m := run{mode: mode}
	n := 0
	for _, r := range runs {
		if r.mode != mode {
			continue
		}
		n++
		m.cpu += r.cpu
		m.steadyCPU += r.steadyCPU
		m.rssKiB += r.rssKiB
		m.endRSS += r.endRSS
		m.heapInuse += r.heapInuse
		m.recorderBytes += r.recorderBytes
		m.recorderPods += r.recorderPods
		m.samples += r.samples
	}
	m.cpu /= time.Duration(n)
	m.steadyCPU /= time.Duration(n)
	m.rssKiB /= int64(n)
	m.endRSS /= float64(n)
	m.heapInuse /= float64(n)
	m.recorderBytes /= float64(n)
	m.recorderPods /= float64(n)
	m.samples /= float64(n)
	return m
}

// agentProc is one running `kprof agent`.
type agentProc struct {
	mode        string
	cmd         *exec.Cmd
	logs        *testenv.SyncBuffer
	exited      chan error
	metricsAddr string
}

func startAgent(kprof string, args []string, mode string) (*agentProc, error) {
	metricsAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	p := &agentProc{mode: mode, logs: &testenv.SyncBuffer{}, exited: make(chan error, 1), metricsAddr: metricsAddr}
	p.cmd = exec.Command(kprof, append(args, "--metrics-bind-address", metricsAddr)...)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.exited <- p.cmd.Wait() }()
	return p, nil
}

// kill ends an agent that failed the measurement.
func (p *agentProc) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// stop reads the agent's metrics, stops it (SIGTERM) and fills in what it cost.
func (p *agentProc) stop(res *run) error {
	m, err := scrape("http://" + p.metricsAddr + "/metrics")
	if err != nil {
		p.kill()
		return err
	}
	res.recorderBytes, res.recorderPods, res.samples = m["kprof_agent_recorder_bytes"], m["kprof_agent_recorder_pods"], m["kprof_agent_samples_total"]
	res.endRSS, res.heapInuse = m["process_resident_memory_bytes"], m["go_memstats_heap_inuse_bytes"]
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if err := <-p.exited; err != nil {
		return fmt.Errorf("agent (recorder %s): %v\n%s", p.mode, err, tail([]byte(p.logs.String())))
	}
	ru := p.cmd.ProcessState.SysUsage().(*syscall.Rusage)
	res.cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	res.rssKiB = ru.Maxrss
	return nil
}

// measureSideBySide runs the agent with the recorder off and on at once, on
// the same node under the same load (each samples the other too), and
// measures both over d after the warmup.
func measureSideBySide(kprof string, args []string, d time.Duration) ([]run, error) {
	modes := map[string][]string{
		"off": {"--recorder-window=0", "--recorder-bind-address=0"},
		"on":  {"--recorder-window=30s", "--recorder-bind-address=127.0.0.1:0"},
	}
	var procs []*agentProc
	for _, mode := range []string{"off", "on"} {
		p, err := startAgent(kprof, append(slices.Clone(args), modes[mode]...), mode)
		if err != nil {
			for _, p := range procs {
				p.kill()
			}
			return nil, err
		}
		procs = append(procs, p)
	}
	fail := func(err error) ([]run, error) {
		for _, p := range procs {
			p.kill()
		}
		return nil, err
	}
	wait := func(d time.Duration) error {
		deadline := time.After(d)
		for {
			for _, p := range procs {
				select {
				case err := <-p.exited:
					p.exited <- err
					return fmt.Errorf("agent (recorder %s) exited early: %v\n%s", p.mode, err, tail([]byte(p.logs.String())))
				default:
				}
			}
			select {
			case <-deadline:
				return nil
			case <-time.After(time.Second):
			}
		}
	}
	cpus := func() ([]time.Duration, error) {
		var out []time.Duration
		for _, p := range procs {
			c, err := procCPU(p.cmd.Process.Pid)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
		return out, nil
	}
	if err := wait(time.Duration(*warmup) * time.Second); err != nil {
		return fail(err)
	}
	before, err := cpus()
	if err != nil {
		return fail(err)
	}
	if err := wait(d); err != nil {
		return fail(err)
	}
	after, err := cpus()
	if err != nil {
		return fail(err)
	}
	runs := make([]run, len(procs))
	var errs []error
	for i, p := range procs {
		runs[i] = run{mode: p.mode, steadyCPU: after[i] - before[i]}
		if err := p.stop(&runs[i]); err != nil {
			errs = append(errs, err)
		}
	}
	return runs, errors.Join(errs...)
}

// procCPU is the CPU time (user + system) process pid used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:])) // f[0] is field 3
	utime, err1 := strconv.ParseUint(f[14-3], 10, 64)
	stime, err2 := strconv.ParseUint(f[15-3], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	const userHZ = 100
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// scrape sums each metric's series of a Prometheus text page.
func scrape(url string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		name, _, _ = strings.Cut(name, "{")
		if v, err := strconv.ParseFloat(rest[strings.LastIndexByte(rest, ' ')+1:], 64); err == nil {
			out[name] += v
		}
	}
	return out, sc.Err()
}

func startBurner(b *testing.B, top, podUID string, depth int) {
	cid := randomHex(b, 64)
	dir := filepath.Join(top, "kubepods", "burstable", "pod"+podUID, cid)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatalf("create cgroup %s: %v", dir, err)
	}
	b.Cleanup(func() {
		removeCgroup(b, dir)
		removeCgroup(b, filepath.Dir(dir)) // the pod's
	})
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), burnEnv+"="+filepath.Join(dir, "cgroup.procs")+","+strconv.Itoa(depth))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); line != "ready\n" {
		b.Fatalf("burner did not get ready: %q %v", line, err)
	}
}

func cpuacctMount(b *testing.B) string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		b.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == "cgroup" && strings.Contains(","+f[3]+",", ",cpuacct,") {
			return f[1]
		}
	}
	b.Fatal("no cgroup v1 cpuacct hierarchy mounted")
	return ""
}

func removeCgroup(b *testing.B, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := os.Remove(dir)
		if err == nil || errors.Is(err, os.ErrNotExist) {
			return
		}
		if !errors.Is(err, syscall.EBUSY) || time.Now().After(deadline) {
			b.Errorf("remove cgroup %s: %v", dir, err)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func randomHex(b *testing.B, n int) string {
	buf := make([]byte, n/2)
	if _, err := rand.Read(buf); err != nil {
		b.Fatal(err)
	}
	return hex.EncodeToString(buf)
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}
