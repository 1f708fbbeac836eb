package testenv

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kprof/kprof/examples/sample-app/app"
)

// sampleAppHealthyTimeout bounds StartSampleApp's wait for /healthz.
const sampleAppHealthyTimeout = 15 * time.Second

// SampleAppBinary builds examples/sample-app once per test binary into the tool cache
// ($KPROF_CACHE/test-bin; test binaries of several packages build it at once, so each
// builds to a name of its own and renames it into place) and returns its path.
func SampleAppBinary() (string, error) { return buildSampleApp() }

var buildSampleApp = sync.OnceValues(func() (string, error) {
	dir := filepath.Join(CacheDir(), "test-bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("build sample-app: %w", err)
	}
	bin := filepath.Join(dir, "sample-app")
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	cmd := exec.Command("go", "build", "-o", tmp, "./examples/sample-app")
	cmd.Dir = RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build sample-app: %w\n%s", err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build sample-app: %w", err)
	}
	return bin, nil
})

// StartSampleApp runs the real sample app (examples/sample-app, see SampleAppBinary) with
// `--listen addr` and args, for example "--background-load", and returns once GET /healthz
// answers 200 OK, within 15 s. Port 0 in addr ("127.0.0.11:0") picks a port free on that host
// right now. It returns the port. The app's stdout and stderr go to sample-app.log in
// t.TempDir(), whose tail is logged if the app does not become healthy; the app is killed when t
// ends.
func StartSampleApp(t testing.TB, addr string, args ...string) int {
	t.Helper()
	port, _ := StartSampleAppProcess(t, addr, args...)
	return port
}

// StartSampleAppProcess is StartSampleApp that also returns the app's process ID, e.g. to move
// it into a pod's cgroup (PodCgroup.Move).
func StartSampleAppProcess(t testing.TB, addr string, args ...string) (port, pid int) {
	t.Helper()
	bin, err := SampleAppBinary()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("testenv: sample-app address %q: %v", addr, err)
	}
	port, err = strconv.Atoi(portStr)
	if err != nil {
		t.Fatalf("testenv: sample-app address %q: bad port", addr)
	}
	if port == 0 {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("testenv: find a free port on %s: %v", host, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		addr = net.JoinHostPort(host, strconv.Itoa(port))
	}

	logPath := filepath.Join(t.TempDir(), "sample-app.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatalf("testenv: sample-app log: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"--listen", addr}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("testenv: start sample-app on %s: %v", addr, err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		logf.Close()
	})

	ctx, cancel := context.WithTimeout(context.Background(), sampleAppHealthyTimeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	var last error
	err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("sample-app exited: %v", waitErr)
		default:
		}
		last = sampleAppHealthy(ctx, hc, addr)
		return last == nil, nil
	})
	if err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("testenv: sample-app on %s not healthy (last: %v): %v\nlog:\n%s", addr, last, err, tail(b, 4<<10))
	}
	return port, cmd.Process.Pid
}

// sampleAppHealthy returns nil when GET /healthz on addr answers 200 OK.
func sampleAppHealthy(ctx context.Context, hc *http.Client, addr string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /healthz: status %d", resp.StatusCode)
	}
	return nil
}

// ServeSampleApp serves the sample app in this process on a random loopback
// port, with its background CPU load (burnCPU) running, until the test ends, and
// returns its base URL (the pprof handlers are below /debug/pprof).
func ServeSampleApp(t testing.TB) string {
	t.Helper()
	a, err := app.New(app.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("sample app: %v", err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.RunBackgroundLoad(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.URL
}

// CPURate returns the CPU time per second of recording that the pprof CPU profile
// data spends in a function whose name ends in fn (on any frame of a sample's stack:
// its cumulative value), e.g. ".burnCPU" for the sample app's load. A test that needs
// a real spike polls it: on a loaded machine a capture during /load can get too
// little CPU to show one.
func CPURate(data []byte, fn string) (float64, error) {
	p, err := profile.ParseData(data)
	if err != nil {
		return 0, fmt.Errorf("cpu rate: %w", err)
	}
	idx := -1
	for i, st := range p.SampleType {
		if st.Type == "cpu" && st.Unit == "nanoseconds" {
			idx = i
		}
	}
	if idx < 0 || p.DurationNanos <= 0 {
		return 0, fmt.Errorf("cpu rate: not a CPU profile with a duration (sample types %v, duration %d ns)", p.SampleType, p.DurationNanos)
	}
	var ns int64
	for _, s := range p.Sample {
	stack:
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.HasSuffix(l.Function.Name, fn) {
					ns += s.Value[idx]
					break stack
				}
			}
		}
	}
	return float64(ns) / float64(p.DurationNanos), nil
}
