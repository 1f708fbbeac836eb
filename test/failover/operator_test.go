package failover

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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// Leader election of the operators under test: short, so a failover takes seconds.
// client-go needs lease > renew > retry; the renew deadline leaves a loaded machine
// (CI under stress-ng) a few retries before a live leader gives up.
const (
	leaseDuration = 6 * time.Second
	renewDeadline = 4 * time.Second
	retryPeriod   = 500 * time.Millisecond
)

// Where the operators run and elect their leader.
const (
	operatorNamespace = "kprof-system"
	leaseName         = "kprof-operator.profiling.io"
)

// kprofBinary builds cmd/kprof once per test binary.
var kprofBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "kprof-failover-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "kprof")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/kprof")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/kprof: %w\n%s", err, out)
	}
	return bin, nil
})

// operator is one `kprof operator` process: a replica with its own pod's volumes.
type operator struct {
	name        string
	kubeconfig  string
	profilesDir string
	spoolDir    string
	extra       []string
	metricsAddr string
	logPath     string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// newOperator prepares a replica named name; its directories are its pod's volumes,
// which outlive its process (a container restart) until the test ends.
func newOperator(t *testing.T, name, kubeconfig string, extra ...string) *operator {
	t.Helper()
	dir := t.TempDir()
	return &operator{
		name: name, kubeconfig: kubeconfig, extra: extra,
		profilesDir: filepath.Join(dir, "profiles"), spoolDir: filepath.Join(dir, "spool"),
		logPath: filepath.Join(dir, "operator.log"),
	}
}

// start runs the replica's process (again) and waits until its metrics answer.
func (o *operator) start(t *testing.T) {
	t.Helper()
	bin, err := kprofBinary()
	if err != nil {
		t.Fatal(err)
	}
	o.metricsAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	args := append([]string{"operator",
		"--kubeconfig", o.kubeconfig,
		"--leader-elect", "--leader-election-namespace", operatorNamespace,
		"--leader-elect-lease-duration", leaseDuration.String(),
		"--leader-elect-renew-deadline", renewDeadline.String(),
		"--leader-elect-retry-period", retryPeriod.String(),
		"--metrics-bind-address", o.metricsAddr,
		"--health-probe-bind-address", "127.0.0.1:0",
		"--secrets-namespace", operatorNamespace,
		"--profiles-dir", o.profilesDir, "--spool-dir", o.spoolDir,
		"--capture-timeout", "10s", "--shutdown-grace-period", "2s",
		"--log-level", "debug",
	}, o.extra...)
	logf, err := os.OpenFile(o.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(logf, "=== %s start %s\n", time.Now().Format(time.RFC3339Nano), o.name)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start operator %s: %v", o.name, err)
	}
	done := make(chan struct{})
	o.mu.Lock()
	o.cmd, o.done = cmd, done
	o.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		o.mu.Lock()
		o.err = err
		o.mu.Unlock()
		close(done)
	}()
	t.Cleanup(func() {
		o.stop()
		if t.Failed() {
			b, _ := os.ReadFile(o.logPath)
			t.Logf("operator %s log (tail):\n%s", o.name, tail(b, 8<<10))
		}
	})
	testenv.Eventually(t, 60*time.Second, func() (bool, string) {
		if o.exited() {
			return false, "operator " + o.name + " exited"
		}
		if _, err := o.metrics(); err != nil {
			return false, err.Error()
		}
		return true, ""
	})
}

// exited reports whether the process has ended.
func (o *operator) exited() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done == nil {
		return true
	}
	select {
	case <-o.done:
		return true
	default:
		return false
	}
}

// kill ends the process with SIGKILL, as the OOM killer or a node failure would:
// no lease release, no spool shutdown, no status flush.
func (o *operator) kill(t *testing.T) {
	t.Helper()
	o.mu.Lock()
	cmd, done := o.cmd, o.done
	o.cmd = nil
	o.mu.Unlock()
	if cmd == nil {
		t.Fatalf("operator %s is not running", o.name)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("kill -9 operator %s: %v", o.name, err)
	}
	<-done
}

// stop ends the process with SIGTERM (then SIGKILL after 20 s); safe when not running.
func (o *operator) stop() {
	o.mu.Lock()
	cmd, done := o.cmd, o.done
	o.cmd = nil
	o.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// metrics scrapes the replica's Prometheus endpoint into name{labels} → value.
func (o *operator) metrics() (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+o.metricsAddr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape operator %s: %w", o.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape operator %s: %s", o.name, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}

// sum adds the series of metric name whose labels contain every one of want ("k=\"v\"").
func sum(m map[string]float64, name string, want ...string) float64 {
	var s float64
	for series, v := range m {
		base, labels, _ := strings.Cut(series, "{")
		if base != name {
			continue
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(labels, w) {
				ok = false
			}
		}
		if ok {
			s += v
		}
	}
	return s
}

// leads reports whether the replica says it is the leader.
func (o *operator) leads() (bool, error) {
	m, err := o.metrics()
	if err != nil {
		return false, err
	}
	return sum(m, "leader_election_master_status", `name="`+leaseName+`"`) == 1, nil
}

// stored lists the profiles the replica stored below its profiles directory, from
// their metadata sidecars.
func (o *operator) stored(t *testing.T) []storage.Meta {
	t.Helper()
	var out []storage.Meta
	_ = filepath.WalkDir(o.profilesDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".pb.gz") {
			return nil
		}
		raw, err := os.ReadFile(path + ".json")
		if err != nil {
			return nil // the sidecar is written after the profile
		}
		var m storage.Meta
		if json.Unmarshal(raw, &m) == nil {
			out = append(out, m)
		}
		return nil
	})
	return out
}

// spooled lists the keys waiting in the replica's spool (one sidecar per entry).
func (o *operator) spooled(t *testing.T) []string {
	t.Helper()
	var keys []string
	_ = filepath.WalkDir(o.spoolDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".json") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var sc struct {
			Key string `json:"key"`
		}
		if json.Unmarshal(raw, &sc) == nil && sc.Key != "" {
			keys = append(keys, sc.Key)
		}
		return nil
	})
	return keys
}

// leaseHolder returns the Lease's holder identity ("" without a Lease).
func leaseHolder(ctx context.Context, c client.Client) (string, error) {
	var l coordinationv1.Lease
	if err := c.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, &l); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if l.Spec.HolderIdentity == nil {
		return "", nil
	}
	return *l.Spec.HolderIdentity, nil
}

// waitLeader waits until o says it leads and returns the Lease's holder then.
func waitLeader(t *testing.T, c client.Client, o *operator, timeout time.Duration) string {
	t.Helper()
	var holder string
	testenv.Eventually(t, timeout, func() (bool, string) {
		if o.exited() {
			return false, "operator " + o.name + " exited"
		}
		ok, err := o.leads()
		if err != nil || !ok {
			return false, fmt.Sprintf("operator %s does not lead (%v)", o.name, err)
		}
		h, err := leaseHolder(context.Background(), c)
		if err != nil || h == "" {
			return false, fmt.Sprintf("lease holder %q (%v)", h, err)
		}
		holder = h
		return true, ""
	})
	return holder
}

// writeKubeconfig writes a kubeconfig for cfg (client certificate auth, as envtest's admin).
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "admin"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// freePort asks the kernel for a free port on every address (so also on a pod's loopback IP).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
