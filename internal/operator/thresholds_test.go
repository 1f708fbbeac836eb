package operator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// anyFreePort returns a port free on every address (so it is free on a pod's loopback IP too).
func anyFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// storedBy lists stored profiles of pod (from their metadata), oldest first.
func storedBy(t *testing.T, dir, pod string) []storage.Meta {
	t.Helper()
	var out []storage.Meta
	for _, f := range profileFiles(t, dir) {
		raw, err := os.ReadFile(f + ".json")
		if err != nil {
			continue
		}
		var m storage.Meta
		if json.Unmarshal(raw, &m) == nil && m.Pod == pod {
			out = append(out, m)
		}
	}
	return out
}

// usageSeen waits until metrics.k8s.io reports the resource of pod at or above (rising)
// or below (falling) q, and returns when it first saw it.
func usageSeen(t *testing.T, c *testenv.Cluster, ns, pod, res string, q string, rising bool) time.Time {
	t.Helper()
	want := resource.MustParse(q)
	var seen time.Time
	eventually(t, 90*time.Second, fmt.Sprintf("%s usage of %s crossing %s", res, pod, q), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		pm, err := c.PodMetrics(ctx, ns, pod)
		if err != nil {
			return err
		}
		for _, ct := range pm.Containers {
			v := ct.Usage.Cpu()
			if res == "memory" {
				v = ct.Usage.Memory()
			}
			if cmp := v.Cmp(want); (rising && cmp >= 0) || (!rising && cmp < 0) {
				seen = time.Now()
				return nil
			}
		}
		return fmt.Errorf("usage %v", pm.Containers)
	})
	return seen
}

func TestThresholdsCatchTheSpikeOnASimulatedCluster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	cl, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "spike"
	if err := cl.Create(ctx, namespaceObj(secretsNamespace)); err != nil {
		t.Fatal(err)
	}
	port := anyFreePort(t)
	type hot struct {
		pod, resource, low, high, threshold string
		ip                                  string
	}
	pods := []*hot{
		{pod: "cpu-hot", resource: "cpu", low: "10m", high: "95m", threshold: "80m"},
		{pod: "mem-hot", resource: "memory", low: "10Mi", high: "95Mi", threshold: "80Mi"},
	}
	for _, h := range pods {
		p := c.CreatePod(t, testenv.PodSpec{
			Namespace: ns, Name: h.pod,
			Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)},
			Containers:  []testenv.ContainerSpec{{Name: "main", Port: port, CPURequest: "100m", MemoryRequest: "100Mi"}},
		})
		h.ip = p.Status.PodIP
		startSampleAppAt(t, net.JoinHostPort(h.ip, strconv.Itoa(port)))
		c.SetUsage(t, ns, h.pod, "10m", "10Mi")
		// The restarted operator captures through the API server's pods/portforward,
		// which kwok forwards to the sample app.
		c.ForwardPodPort(t, ns, h.pod, port, net.JoinHostPort(h.ip, strconv.Itoa(port)))
	}
	// A pod with neither requests nor limits: its percentage cannot be computed.
	c.CreatePod(t, testenv.PodSpec{
		Namespace: ns, Name: "no-requests",
		Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)},
		Containers:  []testenv.ContainerSpec{{Name: "main", Port: port}},
	})
	const cooldown = 150 * time.Second // the metrics pipeline here takes ~35s per change; a dip and a second crossing fit inside
	enabled := true
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "spikes"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Thresholds: &profilingv1alpha1.Thresholds{
				Enabled: &enabled, CPUThresholdPercent: 80, MemoryThresholdPercent: 80,
				CheckIntervalSeconds: 10, CooldownSeconds: int32(cooldown / time.Second),
			},
			ProfileTypes:              []profilingv1alpha1.ProfileType{"cpu", "heap"},
			CPUProfileDurationSeconds: 2,
		},
	}
	if err := cl.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "profiles")
	opts := func(portForward bool) operator.Options {
		return operator.Options{
			ProfilesDir: dir, SpoolDir: filepath.Join(t.TempDir(), "spool"), SecretsNamespace: secretsNamespace,
			RequestTimeout: 10 * time.Second, ShutdownGrace: 5 * time.Second, Registerer: prometheus.NewRegistry(),
			PortForward: portForward, RESTConfig: c.Config,
		}
	}
	stopA := runOperator(t, &testenv.Env{Config: c.Config}, opts(false))

	var (
		mu        sync.Mutex
		triggered = map[string]time.Time{}
	)
	// Phase 1: each pod crosses; exactly one capture of every configured type follows.
	var wg sync.WaitGroup
	for _, h := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raised := time.Now()
			cpu, mem := "", ""
			if h.resource == "cpu" {
				cpu = h.high
			} else {
				mem = h.high
			}
			c.SetUsage(t, ns, h.pod, cpu, mem)
			seen := usageSeen(t, c, ns, h.pod, h.resource, h.threshold, true)
			var first []storage.Meta
			eventually(t, 60*time.Second, "a triggered capture of "+h.pod, func() error {
				first = storedBy(t, dir, h.pod)
				if len(first) < 2 {
					return fmt.Errorf("%d profiles", len(first))
				}
				return nil
			})
			start := first[0].CapturedAt
			t.Logf("trigger latency of %s (%s): metrics pipeline %s (usage set → visible in metrics.k8s.io), kprof %s (visible → capture start)",
				h.pod, h.resource, seen.Sub(raised).Round(time.Millisecond), start.Sub(seen).Round(time.Millisecond))
			mu.Lock()
			triggered[h.pod] = start
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	settle := func(h *hot) []storage.Meta {
		got := storedBy(t, dir, h.pod)
		for _, m := range got {
			if !strings.HasPrefix(m.Reason, "threshold: ") {
				t.Errorf("%s: profile reason %q, want threshold: ...", h.pod, m.Reason)
			}
		}
		return got
	}
	for _, h := range pods {
		got := settle(h)
		if len(got) != 2 || got[0].Type == got[1].Type {
			t.Fatalf("%s: want exactly one cpu and one heap profile after the crossing, got %+v", h.pod, got)
		}
		t.Logf("%s captured with reason %q", h.pod, got[0].Reason)
	}
	t.Run("every trigger is a ProfileCapture of the metrics-server path", func(t *testing.T) {
		// The profiles are stored before the capture's status says so: wait for the status.
		var list profilingv1alpha1.ProfileCaptureList
		eventually(t, time.Minute, "every ProfileCapture of the namespace finished", func() error {
			if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, p := range list.Items {
				if p.Status.CompletionTime == nil {
					return fmt.Errorf("ProfileCapture %s is %q", p.Name, p.Status.Phase)
				}
			}
			return nil
		})
		per := map[string]int{}
		for _, p := range list.Items {
			per[p.Spec.Pod]++
			th := p.Spec.Threshold
			if p.Spec.Trigger != profilingv1alpha1.TriggerThreshold || th == nil || th.Source != profilingv1alpha1.SourceMetricsServer ||
				p.Spec.Requester != "kprof-operator" || p.Status.Phase != profilingv1alpha1.CaptureStored || len(p.Status.Profiles) != 2 {
				t.Errorf("ProfileCapture %s: spec %+v status %+v", p.Name, p.Spec, p.Status)
			}
		}
		for _, h := range pods {
			if per[h.pod] != 1 {
				t.Errorf("%s: %d ProfileCaptures, want 1", h.pod, per[h.pod])
			}
		}
	})

	t.Run("a pod without requests or limits gets a CannotComputePercentage event", func(t *testing.T) {
		eventually(t, 30*time.Second, "CannotComputePercentage event", func() error {
			var list eventsv1.EventList
			if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return err
			}
			for _, e := range list.Items {
				if e.Reason == "CannotComputePercentage" && e.Regarding.Name == "no-requests" && strings.Contains(e.Note, "cannot compute percentage") {
					return nil
				}
			}
			return fmt.Errorf("none among %d events", len(list.Items))
		})
		if n := len(storedBy(t, dir, "no-requests")); n != 0 {
			t.Errorf("%d profiles of the pod without requests", n)
		}
	})

	// Phase 2: restart the operator inside the cooldown (in port-forward mode), then dip
	// below and cross again: still inside the cooldown, nothing is captured.
	stopA()
	reg := prometheus.NewRegistry()
	optsB := opts(true)
	optsB.Registerer = reg
	runOperator(t, &testenv.Env{Config: c.Config}, optsB)
	for _, h := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			low := func(v string) (string, string) {
				if h.resource == "cpu" {
					return v, ""
				}
				return "", v
			}
			c.SetUsage(t, ns, h.pod, first(low(h.low)), second(low(h.low)))
			usageSeen(t, c, ns, h.pod, h.resource, h.threshold, false)
			c.SetUsage(t, ns, h.pod, first(low(h.high)), second(low(h.high)))
			usageSeen(t, c, ns, h.pod, h.resource, h.threshold, true)
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	// Both pods are above their thresholds: every check from now on counts one
	// cooldown suppression per pod. Two more checks have seen both crossings once the
	// counter has grown by two per pod.
	suppressed := func() float64 {
		return counterIn(t, reg, "kprof_trigger_suppressed_total", map[string]string{"reason": "cooldown"})
	}
	base := suppressed()
	eventually(t, 90*time.Second, "two checks that see both crossings inside the cooldown", func() error {
		if n := suppressed() - base; n < float64(2*len(pods)) {
			return fmt.Errorf("%v suppressions since both pods crossed again, want %d", n, 2*len(pods))
		}
		return nil
	})
	for _, h := range pods {
		mu.Lock()
		at := triggered[h.pod]
		mu.Unlock()
		if time.Since(at) >= cooldown {
			t.Fatalf("%s: the dip and second crossing took past the cooldown (%s); cannot show suppression", h.pod, time.Since(at))
		}
		if n := len(storedBy(t, dir, h.pod)); n != 2 {
			t.Errorf("%s: %d profiles inside the cooldown after a restart and a second crossing, want still 2", h.pod, n)
		}
	}
	if t.Failed() {
		return
	}

	// Phase 3: after the cooldown, the (restarted, port-forwarding) operator captures again.
	for _, h := range pods {
		eventually(t, cooldown+60*time.Second, "a capture of "+h.pod+" after the cooldown", func() error {
			if n := len(storedBy(t, dir, h.pod)); n < 4 {
				return fmt.Errorf("%d profiles", n)
			}
			return nil
		})
		got := storedBy(t, dir, h.pod)
		mu.Lock()
		at := triggered[h.pod]
		mu.Unlock()
		if again := got[len(got)-1].CapturedAt; again.Sub(at) < cooldown {
			t.Errorf("%s: captured again %s after the first trigger, inside the %s cooldown", h.pod, again.Sub(at), cooldown)
		}
	}
	var got profilingv1alpha1.ProfilingConfig
	if err := cl.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.LastTriggers) != 2 {
		t.Errorf("status.lastTriggers = %+v, want one entry per pod", got.Status.LastTriggers)
	}
}

func first(a, _ string) string  { return a }
func second(_, b string) string { return b }
