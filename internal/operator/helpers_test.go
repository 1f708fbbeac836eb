package operator_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	rpprof "runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/testenv"
)

// eventually polls cond every 200ms until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func createNamespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := k8sClient.Create(context.Background(), ns); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

type podSpec struct {
	name      string
	labels    map[string]string
	annotated bool
	ip        string // empty: no pod IP
	port      int
	phase     corev1.PodPhase
	ready     bool
}

// createPod creates a pod and writes its status as a kubelet would (envtest has none).
func createPod(t *testing.T, ns string, s podSpec) *corev1.Pod {
	t.Helper()
	ctx := context.Background()
	ann := map[string]string{}
	if s.annotated {
		ann[profilingv1alpha1.AnnotationEnabled] = "true"
	}
	if s.port != 0 {
		ann[profilingv1alpha1.AnnotationPort] = strconv.Itoa(s.port)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: s.name, Labels: s.labels, Annotations: ann},
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "app", Image: "sample-app:dev"}},
		},
	}
	if err := k8sClient.Create(ctx, pod); err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, s.name, err)
	}
	phase := s.phase
	if phase == "" {
		phase = corev1.PodRunning
	}
	ready := corev1.ConditionFalse
	if s.ready {
		ready = corev1.ConditionTrue
	}
	pod.Status = corev1.PodStatus{
		Phase:      phase,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready, LastTransitionTime: metav1.Now()}},
	}
	if s.ip != "" {
		pod.Status.PodIP = s.ip
		pod.Status.PodIPs = []corev1.PodIP{{IP: s.ip}}
	}
	if err := k8sClient.Status().Update(ctx, pod); err != nil {
		t.Fatalf("set status of pod %s/%s: %v", ns, s.name, err)
	}
	return pod
}

// startSampleApp runs the sample-app binary on ip (a free port) and waits for /healthz.
func startSampleApp(t *testing.T, ip string) int {
	t.Helper()
	return testenv.StartSampleApp(t, net.JoinHostPort(ip, "0"), "--background-load")
}

// startSampleAppAt runs the sample-app binary on addr and waits for /healthz.
func startSampleAppAt(t *testing.T, addr string) {
	t.Helper()
	testenv.StartSampleApp(t, addr, "--background-load")
}

func namespaceObj(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

// probeServer is an in-process pprof server that records what it is asked for, so
// tests can see in-flight requests and their cancellation.
type probeServer struct {
	port      int
	requests  atomic.Int64
	inFlight  chan struct{} // closed when the first CPU profile request arrives
	cancelled chan struct{} // closed when a CPU profile request's context ends before it finished
	once1     sync.Once
	once2     sync.Once
	recording atomic.Int64 // CPU profile requests being recorded now
	lastStart atomic.Int64 // when the newest CPU profile request arrived, Unix nanoseconds
}

// recordingSince reports whether a CPU profile request is being recorded that
// arrived at most d ago, so most of its length is still ahead.
func (p *probeServer) recordingSince(d time.Duration) bool {
	return p.recording.Load() > 0 && time.Since(time.Unix(0, p.lastStart.Load())) <= d
}

// startProbeServer serves a real Go pprof handler on ip; handler may replace it.
func startProbeServer(t *testing.T, ip string, handler http.Handler) *probeServer {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatalf("listen on %s: %v", ip, err)
	}
	p := &probeServer{port: l.Addr().(*net.TCPAddr).Port, inFlight: make(chan struct{}), cancelled: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	// The CPU profiler is process-wide, and every probe server lives in the test
	// process, so /profile is simulated: it records for ?seconds=N (or until the
	// client goes away) and then serves a real goroutine profile.
	mux.HandleFunc("/debug/pprof/profile", func(w http.ResponseWriter, r *http.Request) {
		p.lastStart.Store(time.Now().UnixNano())
		p.recording.Add(1)
		p.once1.Do(func() { close(p.inFlight) })
		secs, _ := strconv.Atoi(r.URL.Query().Get("seconds"))
		recorded := func() bool {
			defer p.recording.Add(-1)
			select {
			case <-r.Context().Done():
				p.once2.Do(func() { close(p.cancelled) })
				return false
			case <-time.After(time.Duration(max(secs, 1)) * time.Second):
				return true
			}
		}
		if !recorded() {
			return
		}
		var buf bytes.Buffer
		if err := rpprof.Lookup("goroutine").WriteTo(&buf, 0); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
	var h http.Handler = mux
	if handler != nil {
		h = handler
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.requests.Add(1)
		h.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
	})
	return p
}

// profileFiles lists stored profiles (not their .json metadata) below dir.
func profileFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if strings.HasSuffix(path, ".pb.gz") {
			out = append(out, path)
		}
		return nil
	})
	return out
}
