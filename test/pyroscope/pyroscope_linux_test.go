//go:build linux

package pyroscope

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/testenv"
)

// workloadName is longer than comm's 15 characters: Pyroscope must show it whole.
const workloadName = "kprof-pyroscope-interop"

// workload spends 3 units of CPU in interop_hot for each unit in interop_cold, in one
// thread, with frame pointers; it prints "ready" once calibrated.
const workload = `#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <time.h>

static volatile uint64_t sink;

__attribute__((noinline)) uint64_t spin(long n) {
	uint64_t x = (uint64_t)n;
	for (long i = 0; i < n; i++) {
		x = x * 6364136223846793005ULL + (uint64_t)i;
		__asm__ volatile("" : "+r"(x));
	}
	return x;
}
__attribute__((noinline)) uint64_t interop_hot(long n) { return spin(n) + 1; }
__attribute__((noinline)) uint64_t interop_cold(long n) { return spin(n) + 2; }

int main(void) {
	const long probe = 20000000;
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	sink += spin(probe);
	clock_gettime(CLOCK_MONOTONIC, &b);
	double micros = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
	long unit = (long)(probe / micros * 2000); /* 2 ms */
	printf("ready\n");
	fflush(stdout);
	for (;;) {
		sink += interop_hot(3 * unit);
		sink += interop_cold(unit);
	}
}
`

// serverPath is where hack/install-pyroscope.sh leaves the server.
func serverPath(t *testing.T) (string, bool) {
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(home, ".cache", "kprof", "bin", "pyroscope")
	_, err = os.Stat(p)
	return p, err == nil
}

// The agent's OTLP profiles, as a Pyroscope user sees them: each process under its
// executable's whole name (never unknown_service), kprof.config a label, the CPU
// split between two callers as the workload spends it, and a quiet agent log.
func TestPyroscopeShowsTheAgentsProfilesUnderTheirServiceNames(t *testing.T) {
	server, cached := serverPath(t)
	switch {
	case os.Getenv("KPROF_PYROSCOPE") == "1" && !cached:
		t.Fatalf("KPROF_PYROSCOPE=1 but %s is missing: build it with hack/install-pyroscope.sh", server)
	case !cached:
		t.Skipf("no Pyroscope server at %s: run hack/install-pyroscope.sh (or set KPROF_PYROSCOPE=1 to make its absence a failure)", server)
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_BPF and CAP_PERFMON) to load the agent's eBPF sampler")
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Fatalf("gcc not installed (apt-get install gcc; hack/install-tools.sh does): %v", err)
	}

	httpAddr := startPyroscope(t, server)
	kprof := buildKprof(t)
	wl := buildWorkload(t)
	startReady(t, wl)

	configDir := t.TempDir()
	writeFile(t, filepath.Join(configDir, "interop.yaml"),
		"name: interop-cpu\nversion: 1\nspec:\n  event: cpu-clock\n  frequency: 99\n  intervalSeconds: 2\n")
	logs := &testenv.SyncBuffer{}
	agent := exec.Command(kprof, "agent", "--config-dir", configDir, "--no-cluster", "--node-name", "interop-node",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--recorder-bind-address", "0",
		"--enable-debug-consumer=false", "--enable-profiling-otlp", "--otlp-endpoint", httpAddr, "--otlp-insecure")
	agent.Stdout, agent.Stderr = logs, logs
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = agent.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = agent.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(2 * time.Minute):
			_ = agent.Process.Kill()
			<-done
		}
	})

	q := querier{t: t, base: "http://" + httpAddr, start: time.Now().Add(-time.Minute)}
	selector := `{service_name="` + workloadName + `"}`
	var typeID string
	var hot, cold int64
	testenv.Eventually(t, 4*time.Minute, func() (bool, string) {
		if agent.ProcessState != nil {
			t.Fatalf("kprof agent exited: %s\n%s", agent.ProcessState, logs.String())
		}
		if typeID == "" {
			typeID = q.cpuProfileType()
		}
		if typeID == "" {
			time.Sleep(time.Second)
			return false, "Pyroscope knows no cpu profile type yet; agent log:\n" + tail(logs.String())
		}
		totals := q.functionTotals(typeID, selector)
		hot, cold = totals["interop_hot"], totals["interop_cold"]
		// 20 s of the workload's CPU: enough samples for a 3-point bound.
		if time.Duration(hot+cold) < 20*time.Second {
			time.Sleep(time.Second)
			return false, fmt.Sprintf("%s of %s in %s: interop_hot %s, interop_cold %s", typeID, selector, q.base,
				time.Duration(hot), time.Duration(cold))
		}
		return true, ""
	})

	t.Run("the workload's service name is its executable's whole name", func(t *testing.T) {
		names := q.labelValues("service_name")
		if !slices.Contains(names, workloadName) {
			t.Errorf("service_name values %q lack %q", names, workloadName)
		}
		for _, n := range names {
			if strings.HasPrefix(n, "unknown_service") {
				t.Errorf("service_name %q: a process without a service name", n)
			}
		}
	})
	t.Run("kprof.config is a label", func(t *testing.T) {
		// As kprof_config: the querier hides dotted names from clients that do not
		// declare UTF-8 label names.
		names := q.labelNames(selector)
		if !slices.Contains(names, "kprof_config") {
			t.Errorf("label names %q lack kprof_config", names)
		}
		if v := q.labelValues("kprof_config"); !slices.Contains(v, "interop-cpu") {
			t.Errorf("kprof_config values %q lack interop-cpu", v)
		}
		if slices.Contains(names, "thread.id") || slices.Contains(names, "thread_id") {
			t.Errorf("label names %q have thread ids, off by default", names)
		}
	})
	t.Run("the CPU splits 75/25 between the two callers within 3 points", func(t *testing.T) {
		share := 100 * float64(hot) / float64(hot+cold)
		t.Logf("interop_hot %.1f%% (%s), interop_cold %s", share, time.Duration(hot), time.Duration(cold))
		if math.Abs(share-75) > 3 {
			t.Errorf("interop_hot has %.1f%% of interop_hot+interop_cold (%s vs %s), want 75 ± 3", share, time.Duration(hot), time.Duration(cold))
		}
	})
	t.Run("the agent logs no ERROR line", func(t *testing.T) {
		for line := range strings.Lines(logs.String()) {
			var rec struct{ Level, Msg string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Level == "ERROR" {
				t.Errorf("agent ERROR: %s", strings.TrimSpace(line))
			}
		}
	})
}

// startPyroscope runs the single binary (target all, v1 storage in a temporary
// directory, ports from the kernel) and returns its HTTP address once ready.
func startPyroscope(t *testing.T, bin string) string {
	dir := t.TempDir()
	httpPort, grpcPort, memberPort := freePort(t), freePort(t), freePort(t)
	logs := &testenv.SyncBuffer{}
	cmd := exec.Command(bin, "-target=all", "-architecture.storage=v1", "-write-path=ingester",
		"-server.http-listen-address=127.0.0.1", "-server.http-listen-port="+strconv.Itoa(httpPort),
		"-server.grpc-listen-address=127.0.0.1", "-server.grpc-listen-port="+strconv.Itoa(grpcPort),
		"-memberlist.bind-port="+strconv.Itoa(memberPort), "-memberlist.bind-addr=127.0.0.1",
		"-pyroscopedb.data-path="+filepath.Join(dir, "data"), "-storage.backend=filesystem",
		"-storage.filesystem.dir="+filepath.Join(dir, "storage"), "-compactor.data-dir="+filepath.Join(dir, "compactor"),
		"-self-profiling.disable-push=true")
	// Its components find each other by the address they advertise: the loopback one,
	// not the first interface's, where nothing listens.
	for _, ring := range []string{"compactor.ring.instance-addr", "distributor.ring.instance-addr",
		"overrides-exporter.ring.instance-addr", "query-frontend.instance-addr", "query-scheduler.ring.instance-addr",
		"store-gateway.sharding-ring.instance-addr", "ingester.lifecycler.addr", "memberlist.advertise-addr"} {
		cmd.Args = append(cmd.Args, "-"+ring+"=127.0.0.1")
	}
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("pyroscope log:\n%s", tail(logs.String()))
		}
	})
	addr := "127.0.0.1:" + strconv.Itoa(httpPort)
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		if cmd.ProcessState != nil {
			t.Fatalf("pyroscope exited: %s\n%s", cmd.ProcessState, tail(logs.String()))
		}
		resp, err := http.Get("http://" + addr + "/ready")
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			return false, err.Error()
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			time.Sleep(200 * time.Millisecond)
			return false, fmt.Sprintf("/ready: %s %s", resp.Status, body)
		}
		return true, ""
	})
	return addr
}

// querier calls Pyroscope's Connect querier API in JSON.
type querier struct {
	t     *testing.T
	base  string
	start time.Time
}

func (q querier) call(method string, req, resp any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, q.base+"/querier.v1.QuerierService/"+method, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	hres, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return err
	}
	defer hres.Body.Close()
	data, err := io.ReadAll(io.LimitReader(hres.Body, 64<<20))
	if err != nil {
		return err
	}
	if hres.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", method, hres.Status, data)
	}
	return json.Unmarshal(data, resp)
}

func (q querier) window() (int64, int64) {
	return q.start.UnixMilli(), time.Now().Add(time.Minute).UnixMilli()
}

// cpuProfileType is the ID of the CPU-time profile type Pyroscope made of the
// agent's profiles, "" before it has one.
func (q querier) cpuProfileType() string {
	from, to := q.window()
	var resp struct {
		ProfileTypes []struct{ ID string } `json:"profileTypes"`
	}
	if err := q.call("ProfileTypes", map[string]any{"start": from, "end": to}, &resp); err != nil {
		q.t.Logf("ProfileTypes: %v", err)
		return ""
	}
	for _, pt := range resp.ProfileTypes {
		if strings.Contains(pt.ID, ":cpu:nanoseconds:") {
			return pt.ID
		}
	}
	return ""
}

// functionTotals sums each function's total value over the merged flame graph.
func (q querier) functionTotals(typeID, selector string) map[string]int64 {
	from, to := q.window()
	var resp struct {
		Flamegraph struct {
			Names  []string `json:"names"`
			Levels []struct {
				Values []json.Number `json:"values"`
			} `json:"levels"`
		} `json:"flamegraph"`
	}
	err := q.call("SelectMergeStacktraces", map[string]any{"profileTypeID": typeID, "labelSelector": selector,
		"start": from, "end": to}, &resp)
	if err != nil {
		q.t.Logf("SelectMergeStacktraces: %v", err)
		return nil
	}
	out := map[string]int64{}
	fg := resp.Flamegraph
	for _, l := range fg.Levels {
		// Each node is 4 numbers: x offset, total, self, name index.
		for i := 0; i+3 < len(l.Values); i += 4 {
			total, _ := l.Values[i+1].Int64()
			name, _ := l.Values[i+3].Int64()
			if name >= 0 && int(name) < len(fg.Names) {
				out[fg.Names[name]] += total
			}
		}
	}
	return out
}

func (q querier) labelValues(name string) []string {
	from, to := q.window()
	var resp struct{ Names []string }
	if err := q.call("LabelValues", map[string]any{"name": name, "start": from, "end": to}, &resp); err != nil {
		q.t.Fatalf("LabelValues: %v", err)
	}
	return resp.Names
}

func (q querier) labelNames(selector string) []string {
	from, to := q.window()
	var resp struct{ Names []string }
	if err := q.call("LabelNames", map[string]any{"matchers": []string{selector}, "start": from, "end": to}, &resp); err != nil {
		q.t.Fatalf("LabelNames: %v", err)
	}
	return resp.Names
}

func buildKprof(t *testing.T) string {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	bin := filepath.Join(t.TempDir(), "kprof")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kprof")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/kprof: %v\n%s", err, out)
	}
	return bin
}

func buildWorkload(t *testing.T) string {
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.c"), filepath.Join(dir, workloadName)
	writeFile(t, src, workload)
	if out, err := exec.Command("gcc", "-O1", "-fno-omit-frame-pointer", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("building the workload: %v\n%s", err, out)
	}
	return bin
}

// startReady starts bin and waits for its "ready" line; cleanup kills it.
func startReady(t *testing.T, bin string) {
	cmd := exec.Command(bin)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "ready" {
		t.Fatalf("workload: %q, %v", line, err)
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func writeFile(t *testing.T, path, content string) {
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// tail is the last 60 lines of a log.
func tail(s string) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-60):], "\n")
}
