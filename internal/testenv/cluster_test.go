package testenv

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

func init() {
	// envtest logs through controller-runtime's logger; without one it dumps a stack trace.
	ctrllog.SetLogger(logr.Discard())
}

// metricsDeadline is generous: metrics-server needs two scrapes (2×10s) to report CPU, and this
// machine is shared.
const metricsDeadline = 3 * time.Minute

func TestCluster(t *testing.T) {
	c := StartCluster(t, ClusterOptions{})
	const ns = "apps"

	t.Run("a created pod is Running and Ready with a loopback pod IP", func(t *testing.T) {
		pod := c.CreatePod(t, PodSpec{
			Namespace: ns, Name: "web", Labels: map[string]string{"app": "web"},
			Containers: []ContainerSpec{{Name: "app", Port: 8080, CPURequest: "100m", MemoryLimit: "256Mi"}},
		})
		if pod.Spec.NodeName != "kwok-node-0" {
			t.Errorf("node = %q, want kwok-node-0", pod.Spec.NodeName)
		}
		if pod.Status.Phase != corev1.PodRunning || !podReady(pod) {
			t.Errorf("phase %s, ready %t; want Running and Ready", pod.Status.Phase, podReady(pod))
		}
		ip, err := netip.ParseAddr(pod.Status.PodIP)
		if err != nil || !netip.MustParsePrefix(PodCIDR).Contains(ip) {
			t.Errorf("pod IP %q is not in %s", pod.Status.PodIP, PodCIDR)
		}
		got := pod.Spec.Containers[0].Resources
		if q := got.Requests[corev1.ResourceCPU]; q.Cmp(resource.MustParse("100m")) != 0 {
			t.Errorf("cpu request = %s, want 100m", q.String())
		}
		if q := got.Limits[corev1.ResourceMemory]; q.Cmp(resource.MustParse("256Mi")) != 0 {
			t.Errorf("memory limit = %s, want 256Mi", q.String())
		}
		if _, ok := got.Limits[corev1.ResourceCPU]; ok {
			t.Errorf("cpu limit set, want unset")
		}
	})

	t.Run("usage set on a pod shows in metrics.k8s.io through the API server, and so does a change", func(t *testing.T) {
		c.CreatePod(t, PodSpec{Namespace: ns, Name: "busy"})
		c.SetUsage(t, ns, "busy", "500m", "200Mi")
		waitUsage(t, c, ns, "busy", "500m", "200Mi")
		c.SetUsage(t, ns, "busy", "1500m", "") // memory stays
		waitUsage(t, c, ns, "busy", "1500m", "200Mi")
		c.SetUsage(t, ns, "busy", "", "64Mi")
		waitUsage(t, c, ns, "busy", "1500m", "64Mi")
	})

	t.Run("metrics.k8s.io is unavailable while metrics-server is stopped and recovers after a start", func(t *testing.T) {
		c.CreatePod(t, PodSpec{Namespace: ns, Name: "steady"})
		c.SetUsage(t, ns, "steady", "200m", "100Mi")
		waitUsage(t, c, ns, "steady", "200m", "100Mi")

		c.StopMetricsServer(t)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := c.PodMetrics(ctx, ns, "steady")
		if !apierrors.IsServiceUnavailable(err) {
			t.Fatalf("PodMetrics with metrics-server stopped: err = %v, want 503 ServiceUnavailable", err)
		}

		c.StartMetricsServer(t)
		waitUsage(t, c, ns, "steady", "200m", "100Mi")
	})

	t.Run("port-forward through the API server reaches the forwarded target", func(t *testing.T) {
		target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "target saw %s", r.URL.Path)
		}))
		defer target.Close()
		c.CreatePod(t, PodSpec{Namespace: ns, Name: "pprof", Containers: []ContainerSpec{{Port: 6060}}})
		c.ForwardPodPort(t, ns, "pprof", 6060, target.Listener.Addr().String())

		body := getThroughPortForward(t, c, ns, "pprof", 6060, "/debug/pprof/")
		if want := "target saw /debug/pprof/"; body != want {
			t.Errorf("body = %q, want %q", body, want)
		}

		// A second port of the same pod goes to its own target; the first still works.
		other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "other")
		}))
		defer other.Close()
		c.ForwardPodPort(t, ns, "pprof", 8080, other.Listener.Addr().String())
		if body := getThroughPortForward(t, c, ns, "pprof", 8080, "/"); body != "other" {
			t.Errorf("port 8080 body = %q, want %q", body, "other")
		}
		if body := getThroughPortForward(t, c, ns, "pprof", 6060, "/x"); body != "target saw /x" {
			t.Errorf("port 6060 body = %q, want %q", body, "target saw /x")
		}
	})
}

func TestClusterWithoutMetricsServer(t *testing.T) {
	c := StartCluster(t, ClusterOptions{Nodes: 2, WithoutMetricsServer: true})
	if len(c.Nodes) != 2 || c.Nodes[1] != "kwok-node-1" {
		t.Fatalf("nodes = %v, want kwok-node-0, kwok-node-1", c.Nodes)
	}
	pod := c.CreatePod(t, PodSpec{Namespace: "default", Name: "lonely", Node: "kwok-node-1"})
	if pod.Spec.NodeName != "kwok-node-1" {
		t.Errorf("node = %q, want kwok-node-1", pod.Spec.NodeName)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.PodMetrics(ctx, "default", "lonely"); !apierrors.IsNotFound(err) {
		t.Errorf("PodMetrics without metrics-server: err = %v, want NotFound (no metrics.k8s.io API)", err)
	}
}

// waitUsage waits until the pod's metrics through the API server show cpu (±10%: metrics-server
// derives it from two cumulative samples) and memory (exact).
func waitUsage(t *testing.T, c *Cluster, ns, name, cpu, memory string) {
	t.Helper()
	cpuQ, memQ := resource.MustParse(cpu), resource.MustParse(memory)
	wantCPU, wantMem := cpuQ.MilliValue(), memQ.Value()
	var last string
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), metricsDeadline)
	defer cancel()
	err := wait.PollUntilContextCancel(ctx, time.Second, true, func(ctx context.Context) (bool, error) {
		m, err := c.PodMetrics(ctx, ns, name)
		if err != nil {
			last = err.Error()
			return false, nil
		}
		gotCPU, gotMem := podUsage(m)
		if s := fmt.Sprintf("cpu %dm memory %d", gotCPU, gotMem); s != last {
			t.Logf("%s: %s/%s metrics %s (window %s at %s)", time.Since(began).Round(time.Millisecond), ns, name, s, m.Window.Duration, m.Timestamp.Format(time.TimeOnly))
			last = s
		}
		return gotMem == wantMem && gotCPU*10 >= wantCPU*9 && gotCPU*10 <= wantCPU*11, nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s metrics never showed cpu %s memory %s (%d); last: %s", ns, name, cpu, memory, wantMem, last)
	}
}

func podUsage(m *metricsv1beta1.PodMetrics) (milliCPU, memBytes int64) {
	for _, ctr := range m.Containers {
		milliCPU += ctr.Usage.Cpu().MilliValue()
		memBytes += ctr.Usage.Memory().Value()
	}
	return milliCPU, memBytes
}

// getThroughPortForward GETs path on the pod's port through client-go's port forwarder
// (pods/portforward on kube-apiserver, SPDY), as kubectl port-forward does.
func getThroughPortForward(t *testing.T, c *Cluster, ns, pod string, port int, path string) string {
	t.Helper()
	cs, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	rt, upgrader, err := spdy.RoundTripperFor(c.Config)
	if err != nil {
		t.Fatal(err)
	}
	url := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, url)
	stop, ready := make(chan struct{}), make(chan struct{})
	var errOut lockedBuffer
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{fmt.Sprintf("0:%d", port)}, stop, ready, io.Discard, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	defer func() {
		close(stop)
		<-done
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("port-forward %s/%s:%d: %v", ns, pod, port, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("port-forward %s/%s:%d not ready", ns, pod, port)
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d%s", ports[0].Local, path))
	if err != nil {
		t.Fatalf("GET through port-forward %s/%s:%d: %v (forwarder: %s)", ns, pod, port, err, errOut.String())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lockedBuffer is a bytes.Buffer the port forwarder may write to while the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
