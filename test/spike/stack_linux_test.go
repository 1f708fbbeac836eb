//go:build linux

package spike

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/agent"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// systemNamespace is where the operator and the agents run, as in config/default.
const systemNamespace = "kprof-system"

// recorderPort is the agents' flight recorder port (the chart's agent.recorder.port; not
// its default 9092, which another agent or a Kafka broker on this machine may hold).
const recorderPort = 19092

// window is the flight recorder's window, the agent's and the operator's.
const window = 30 * time.Second

// stack is a simulated cluster (kube-apiserver, etcd, kwok, metrics-server) with the real
// operator and the real node agent of this machine on its first node: the pieces of a kprof
// install, each in this test process.
type stack struct {
	c        *testenv.Cluster
	cl       client.Client
	profiles string // the operator's profiles directory
	// agentIP is the pod IP of each node's kwok agent pod ("" for a node without one).
	agentIP map[string]string
	// tokenFile is where the agents read the recorder token, as the DaemonSet mounts it.
	tokenFile string
}

// startStack starts the cluster with nodes kwok nodes and metrics-server at resolution, the
// operator (leader of its own manager), and a kwok agent pod on each node of agentNodes, whose
// IP the real agent started by startAgent listens on.
func startStack(t testing.TB, nodes int, resolution time.Duration, agentNodes ...string) *stack {
	t.Helper()
	c := testenv.StartCluster(t, testenv.ClusterOptions{Nodes: nodes, MetricsResolution: resolution, IntegrateUsage: true})
	cl, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	c.Kubepods(t) // the node's kubepods tree exists before the agent starts, as kubelet's does
	s := &stack{c: c, cl: cl, profiles: filepath.Join(t.TempDir(), "profiles"), agentIP: map[string]string{},
		tokenFile: filepath.Join(t.TempDir(), "recorder", "token")}
	for _, node := range agentNodes {
		p := c.CreatePod(t, testenv.PodSpec{
			Namespace: systemNamespace, Name: "kprof-agent-" + node, Node: node,
			Labels:     map[string]string{"app.kubernetes.io/name": "kprof", "app.kubernetes.io/component": "agent"},
			Containers: []testenv.ContainerSpec{{Name: "agent", Port: recorderPort}},
		})
		s.agentIP[node] = p.Status.PodIP
	}
	return s
}

// runOperator runs the operator until the returned stop (also called when t ends).
func (s *stack) runOperator(t testing.TB) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(s.c.Config, ctrl.Options{
		Scheme:                 operator.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := operator.Setup(mgr, operator.Options{
		ProfilesDir: s.profiles, SpoolDir: filepath.Join(filepath.Dir(s.profiles), "spool"), SecretsNamespace: systemNamespace,
		RequestTimeout: 20 * time.Second, ShutdownGrace: 5 * time.Second, Registerer: prometheus.NewRegistry(),
		RESTConfig: s.c.Config, AgentRecorderPort: recorderPort, RecorderWindow: window,
	}); err != nil {
		t.Fatalf("operator setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("operator stopped with error: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	s.writeToken(t)
	return stop
}

// writeToken waits for the Secret the operator creates and writes its token where the agents
// read it, as kubelet mounts it into the DaemonSet's pods.
func (s *stack) writeToken(t testing.TB) {
	t.Helper()
	var secret corev1.Secret
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := s.cl.Get(ctx, client.ObjectKey{Namespace: systemNamespace, Name: operator.DefaultAgentTokenSecret}, &secret)
		return err == nil, fmt.Sprintf("the recorder token Secret: %v", err)
	})
	if err := os.MkdirAll(filepath.Dir(s.tokenFile), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.tokenFile, secret.Data[operator.TokenSecretKey], 0o400); err != nil {
		t.Fatal(err)
	}
}

// runningAgent is the real node agent.
type runningAgent struct {
	*agent.Agent
	reg  *prometheus.Registry
	log  *syncLog
	stop func()
}

// startAgent runs the real agent (with sampler: eBPF at 99 Hz in 1 s intervals; cgroup
// readings every second, node thresholds, flight recorder) for node, with kubeconfig (the
// cluster's admin when empty), its recorder on the node's kwok agent pod IP.
func (s *stack) startAgent(t testing.TB, node, kubeconfig string, sampler bool) *runningAgent {
	t.Helper()
	if kubeconfig == "" {
		kubeconfig = s.c.Kubeconfig
	}
	dir := t.TempDir()
	if sampler {
		if err := os.WriteFile(filepath.Join(dir, "cpu.yaml"),
			[]byte("name: cpu\nversion: 1\nspec: {event: cpu-clock, frequency: 99, intervalSeconds: 1}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logs := &syncLog{}
	reg := prometheus.NewRegistry()
	a, err := agent.New(agent.Config{
		ConfigDir: dir, NoDefault: true, NodeName: node, Kubeconfig: kubeconfig,
		MetricsAddr: "0", HealthAddr: "0", UsageInterval: time.Second, NodeThresholds: true,
		RecorderWindow: window, RecorderAddr: net.JoinHostPort(s.agentIP[node], strconv.Itoa(recorderPort)),
		RecorderTokenFile: s.tokenFile,
		Logger:            slog.New(slog.NewJSONHandler(logs, nil)),
		Registry:          reg,
	})
	if err != nil {
		t.Fatalf("agent: %v", err)
	}
	if err := a.Start(t.Context()); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	ra := &runningAgent{Agent: a, reg: reg, log: logs}
	var once sync.Once
	ra.stop = func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("agent shutdown: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		ra.stop()
		if t.Failed() {
			t.Logf("agent log of %s (tail):\n%s", node, ra.log.tail(8<<10))
		}
	})
	return ra
}

// syncLog is a log destination safe for concurrent writes.
type syncLog struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *syncLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}

// app is an annotated kwok pod served by a real sample app on the pod's IP, optionally in the
// pod's real cgroup (a pod on an agent's node).
type app struct {
	pod  *corev1.Pod
	addr string // the sample app's host:port (pod IP)
	hits *pprofHits
}

// startApp creates pod name in ns on node with one container "main" of these requests,
// annotated for profiling, and serves it with the sample app; with inCgroup the app runs in
// the pod's container cgroup, as the agent on node sees a real container.
func (s *stack) startApp(t testing.TB, ns, name, node, cpuReq, memReq string, inCgroup bool, annotations map[string]string) *app {
	t.Helper()
	port := freePort(t)
	ann := map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}
	for k, v := range annotations {
		ann[k] = v
	}
	p := s.c.CreatePod(t, testenv.PodSpec{
		Namespace: ns, Name: name, Node: node, Labels: map[string]string{"app": "shop"}, Annotations: ann,
		Containers: []testenv.ContainerSpec{{Name: "main", Port: port, CPURequest: cpuReq, MemoryRequest: memReq}},
	})
	// The sample app listens on a loopback port of its own; in front of it, on the pod's IP,
	// a proxy notes when pprof requests arrive (the end of the trigger latency).
	backend := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	var cg *testenv.PodCgroup
	if inCgroup {
		cg = s.c.NewPodCgroup(t, p) // before the app: its cleanup runs after the app is killed
	}
	_, pid := testenv.StartSampleAppProcess(t, backend)
	if cg != nil {
		cg.Move(t, pid)
	}
	a := &app{pod: p, addr: net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)), hits: &pprofHits{}}
	a.hits.serve(t, a.addr, backend)
	return a
}

// load asks the app for CPU or memory load (the sample app's /load query, e.g.
// "cpu=10s&workers=1"), which lasts as long as the request: it returns once the app said it
// started, and keeps the request open in the background until the load is done or t ends.
func (a *app) load(t testing.TB, query string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+a.addr+"/load?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("load %s: %v", query, err)
	}
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		t.Fatalf("load %s: %s: %s", query, resp.Status, body)
	}
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if !strings.HasPrefix(line, "started") {
		resp.Body.Close()
		t.Fatalf("load %s: the app answered %q (%v), want started ...", query, line, err)
	}
	go func() {
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
	}()
}

// pprofHits is a reverse proxy that records when pprof requests arrive.
type pprofHits struct {
	mu    sync.Mutex
	times []time.Time
}

func (h *pprofHits) serve(t testing.TB, listen, backend string) {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatalf("listen on the pod IP %s: %v", listen, err)
	}
	target := &url.URL{Scheme: "http", Host: backend}
	hc := &http.Client{Timeout: 5 * time.Minute}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/debug/pprof/") {
			h.mu.Lock()
			h.times = append(h.times, time.Now())
			h.mu.Unlock()
		}
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target.JoinPath(r.URL.Path).String()+"?"+r.URL.RawQuery, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp, err := hc.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, _ = io.Copy(w, resp.Body)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
}

// firstAfter returns the first pprof request at or after t0 (zero: none).
func (h *pprofHits) firstAfter(t0 time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, at := range h.times {
		if !at.Before(t0) {
			return at
		}
	}
	return time.Time{}
}

// freePort returns a TCP port free on every address (so on a pod's loopback IP too).
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// createConfig creates ProfilingConfig name in ns selecting app=shop with thresholds of
// source (CPU 80% and memory 50% of the request) and cooldown, capturing cpu (cpuSeconds) and
// heap into the operator's profiles directory.
func (s *stack) createConfig(t testing.TB, ns, name string, source profilingv1alpha1.ThresholdSource, cooldown time.Duration, cpuSeconds int32) {
	t.Helper()
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector: profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}},
			Thresholds: &profilingv1alpha1.Thresholds{
				Enabled: ptr.To(true), CPUThresholdPercent: 80, MemoryThresholdPercent: 50, CheckIntervalSeconds: 10,
				CooldownSeconds: int32(cooldown / time.Second), Basis: "Request", Source: source,
			},
			ProfileTypes:              []profilingv1alpha1.ProfileType{"cpu", "heap"},
			CPUProfileDurationSeconds: cpuSeconds,
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	if err := s.cl.Create(ctx, pc); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ProfilingConfig %s/%s: %v", ns, name, err)
	}
}

// captures lists the ProfileCaptures of pod (all of ns when pod is "").
func (s *stack) captures(t testing.TB, ns, pod string) []profilingv1alpha1.ProfileCapture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var list profilingv1alpha1.ProfileCaptureList
	if err := s.cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list ProfileCaptures: %v", err)
	}
	var out []profilingv1alpha1.ProfileCapture
	for _, pc := range list.Items {
		if pod == "" || pc.Spec.Pod == pod {
			out = append(out, pc)
		}
	}
	return out
}

// waitFinished waits until ProfileCapture ns/name has a final phase and returns it.
func (s *stack) waitFinished(t testing.TB, ns, name string, timeout time.Duration) profilingv1alpha1.ProfileCapture {
	t.Helper()
	var pc profilingv1alpha1.ProfileCapture
	testenv.Eventually(t, timeout, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &pc); err != nil {
			return false, err.Error()
		}
		switch pc.Status.Phase {
		case profilingv1alpha1.CaptureStored, profilingv1alpha1.CaptureFailed, profilingv1alpha1.CaptureSkipped:
			return true, ""
		}
		return false, fmt.Sprintf("ProfileCapture %s/%s is %q: %s", ns, name, pc.Status.Phase, pc.Status.Message)
	})
	return pc
}

func init() {
	// The operator's controller-runtime logs go nowhere (its manager is quiet in tests).
	ctrllog.SetLogger(logr.Discard())
}
