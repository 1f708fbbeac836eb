//go:build scale

package scale

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/testenv"
)

// buildBinary builds pkg (relative to the repository root) into dir and returns its path.
func buildBinary(t *testing.T, dir, name, pkg string, tags ...string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	args := []string{"build", "-o", out}
	if len(tags) > 0 {
		args = append(args, "-tags", tags[0])
	}
	cmd := exec.Command("go", append(args, pkg)...)
	cmd.Dir = testenv.RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// freePortOnEveryAddress returns a port nothing listens on at any address, so a pod IP from
// testenv.PodCIDR (loopback) with that port refuses connections.
func freePortOnEveryAddress(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// manager is a controller-runtime manager running as its own process: the kprof operator or
// the peer.
type manager struct {
	name       string
	pid        int
	metricsURL string
	logPath    string
	done       chan struct{}
	err        error // valid once done is closed
}

// startManager starts bin with args plus --metrics-bind-address and --health-probe-bind-address
// on free loopback ports, reading the cluster's kubeconfig from $KUBECONFIG (the operator has no
// --kubeconfig flag; ctrl.GetConfig reads the variable), and waits until /readyz answers.
func startManager(t *testing.T, name, bin, kubeconfig string, args ...string) *manager {
	t.Helper()
	metricsAddr, probeAddr := freeLoopbackAddr(t), freeLoopbackAddr(t)
	m := &manager{
		name: name, metricsURL: "http://" + metricsAddr + "/metrics",
		logPath: filepath.Join(t.TempDir(), name+".log"), done: make(chan struct{}),
	}
	logf, err := os.Create(m.logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, append(args, "--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	m.pid = cmd.Process.Pid
	go func() {
		m.err = cmd.Wait()
		logf.Close()
		close(m.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-m.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-m.done
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", name, tailFile(m.logPath, 4<<10))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		if err := m.alive(); err != nil {
			t.Fatalf("%v\n%s", err, tailFile(m.logPath, 4<<10))
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+probeAddr+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready after a minute\n%s", name, tailFile(m.logPath, 4<<10))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// alive returns an error when the process has exited.
func (m *manager) alive() error {
	select {
	case <-m.done:
		return fmt.Errorf("%s exited: %v", m.name, m.err)
	default:
		return nil
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// logSummary counts the JSON log lines of a manager by level and by message.
type logSummary struct {
	lines    int
	byLevel  map[string]int
	messages []countedMessage // most frequent first
}

type countedMessage struct {
	level, msg string
	n          int
}

func summarizeLog(path string) (logSummary, error) {
	f, err := os.Open(path)
	if err != nil {
		return logSummary{}, err
	}
	defer f.Close()
	s := logSummary{byLevel: map[string]int{}}
	counts := map[[2]string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		s.lines++
		var line struct {
			Level string `json:"level"`
			Msg   string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil {
			line.Level, line.Msg = "?", "(not JSON)"
		}
		s.byLevel[line.Level]++
		counts[[2]string{line.Level, line.Msg}]++
	}
	for k, n := range counts {
		s.messages = append(s.messages, countedMessage{level: k[0], msg: k[1], n: n})
	}
	sort.Slice(s.messages, func(i, j int) bool {
		if s.messages[i].n != s.messages[j].n {
			return s.messages[i].n > s.messages[j].n
		}
		return s.messages[i].msg < s.messages[j].msg
	})
	return s, sc.Err()
}
