package operator_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// captureCluster is a simulated cluster for ProfileCapture tests: node 0 without an
// agent, node 1 with a (fake) agent pod whose flight recorder is an HTTP server on the
// agent pod's IP.
type captureCluster struct {
	c      *testenv.Cluster
	cl     client.Client
	dir    string // the operator's profiles directory
	spool  string
	port   int // the sample apps' and the agent's recorder port
	agent  *fakeAgent
	nodeNo string // node without an agent
	nodeAg string // node with one
}

func startCaptureCluster(t *testing.T) *captureCluster {
	t.Helper()
	c := testenv.StartCluster(t, testenv.ClusterOptions{Nodes: 2})
	cl, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(context.Background(), namespaceObj(secretsNamespace)); err != nil {
		t.Fatal(err)
	}
	cc := &captureCluster{c: c, cl: cl, dir: filepath.Join(t.TempDir(), "profiles"), spool: filepath.Join(t.TempDir(), "spool"),
		port: anyFreePort(t), nodeNo: c.Nodes[0], nodeAg: c.Nodes[1]}
	agentPod := c.CreatePod(t, testenv.PodSpec{
		Namespace: secretsNamespace, Name: "kprof-agent-x", Node: cc.nodeAg,
		Labels: map[string]string{"app.kubernetes.io/name": "kprof", "app.kubernetes.io/component": "agent"},
	})
	cc.agent = startFakeAgent(t, cl, net.JoinHostPort(agentPod.Status.PodIP, strconv.Itoa(cc.port)))
	return cc
}

func (cc *captureCluster) options(maxPerNamespace int) operator.Options {
	return operator.Options{
		ProfilesDir: cc.dir, SpoolDir: cc.spool, SecretsNamespace: secretsNamespace,
		RequestTimeout: 10 * time.Second, ShutdownGrace: 5 * time.Second, Registerer: prometheus.NewRegistry(),
		RESTConfig: cc.c.Config, DisableThresholds: true,
		AgentRecorderPort: cc.port, RecorderWindow: 20 * time.Second, MaxCapturesPerNamespace: maxPerNamespace,
	}
}

// appPod creates an annotated pod running the sample app on node.
func (cc *captureCluster) appPod(t *testing.T, ns, name, node string, annotated bool, labels map[string]string) *corev1.Pod {
	t.Helper()
	ann := map[string]string{profilingv1alpha1.AnnotationPort: strconv.Itoa(cc.port)}
	if annotated {
		ann[profilingv1alpha1.AnnotationEnabled] = "true"
	}
	p := cc.c.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: name, Node: node, Labels: labels, Annotations: ann,
		Containers: []testenv.ContainerSpec{{Name: "main", Port: cc.port}}})
	startSampleAppAt(t, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(cc.port)))
	return p
}

func (cc *captureCluster) config(t *testing.T, ns, name string, sel map[string]string, cooldown int32) {
	t.Helper()
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			ProfileTypes:              []profilingv1alpha1.ProfileType{"cpu", "heap"},
			CPUProfileDurationSeconds: 1,
		},
	}
	if sel != nil {
		pc.Spec.Selector.LabelSelector = &metav1.LabelSelector{MatchLabels: sel}
	}
	if cooldown > 0 {
		enabled := false // the metrics-server path stays out of these tests
		pc.Spec.Thresholds = &profilingv1alpha1.Thresholds{Enabled: &enabled, CPUThresholdPercent: 80, MemoryThresholdPercent: 90,
			CheckIntervalSeconds: 30, CooldownSeconds: cooldown}
	}
	if err := cc.cl.Create(context.Background(), pc); err != nil {
		t.Fatalf("create ProfilingConfig %s/%s: %v", ns, name, err)
	}
}

// create creates a ProfileCapture and returns its name.
func (cc *captureCluster) create(t *testing.T, pcap *profilingv1alpha1.ProfileCapture) string {
	t.Helper()
	if pcap.Name == "" && pcap.GenerateName == "" {
		pcap.GenerateName = pcap.Spec.Pod + "-"
	}
	if err := cc.cl.Create(context.Background(), pcap); err != nil {
		t.Fatalf("create ProfileCapture: %v", err)
	}
	return pcap.Name
}

// finished waits until the capture ended and returns it.
func (cc *captureCluster) finished(t *testing.T, ns, name string, timeout time.Duration) *profilingv1alpha1.ProfileCapture {
	t.Helper()
	var got profilingv1alpha1.ProfileCapture
	testenv.Eventually(t, timeout, func() (bool, string) {
		if err := cc.cl.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &got); err != nil {
			return false, err.Error()
		}
		switch got.Status.Phase {
		case profilingv1alpha1.CaptureStored, profilingv1alpha1.CaptureFailed, profilingv1alpha1.CaptureSkipped:
			return true, ""
		}
		return false, fmt.Sprintf("ProfileCapture %s/%s is %q: %s", ns, name, got.Status.Phase, got.Status.Message)
	})
	return &got
}

func userCapture(ns, pod string, cpuSeconds int32) *profilingv1alpha1.ProfileCapture {
	return &profilingv1alpha1.ProfileCapture{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: pod + "-"},
		Spec:       profilingv1alpha1.ProfileCaptureSpec{Pod: pod, CPUDurationSeconds: cpuSeconds, Reason: "incident 4711", Requester: "alice"},
	}
}

func thresholdCapture(ns, pod, config string) *profilingv1alpha1.ProfileCapture {
	return &profilingv1alpha1.ProfileCapture{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: pod + "-"},
		Spec: profilingv1alpha1.ProfileCaptureSpec{
			Pod: pod, Trigger: profilingv1alpha1.TriggerThreshold, Reason: "cpu 93% of request ≥ 80%", Requester: "kprof-agent/x",
			ProfilingConfig: &profilingv1alpha1.ProfilingConfigReference{Name: config},
			Threshold: &profilingv1alpha1.ThresholdCrossing{Source: profilingv1alpha1.SourceAgent, Resource: "cpu", Container: "main",
				CrossedAt: metav1.NewMicroTime(time.Now())},
		},
	}
}

// checkStored checks every listed profile is a file whose size and sha256 match.
func checkStored(t *testing.T, pcap *profilingv1alpha1.ProfileCapture, wantTypes ...string) {
	t.Helper()
	var types []string
	for _, p := range pcap.Status.Profiles {
		types = append(types, p.Type)
		u, err := url.Parse(p.Location)
		if err != nil || u.Scheme != "file" {
			t.Errorf("%s: location %q is not file://", p.Type, p.Location)
			continue
		}
		data, err := os.ReadFile(u.Path)
		if err != nil {
			t.Errorf("%s: %v", p.Type, err)
			continue
		}
		sum := sha256.Sum256(data)
		if int64(len(data)) != p.Size || hex.EncodeToString(sum[:]) != p.SHA256 {
			t.Errorf("%s: status says %d bytes sha256 %s, the file has %d bytes sha256 %x", p.Type, p.Size, p.SHA256, len(data), sum)
		}
	}
	if strings.Join(types, ",") != strings.Join(wantTypes, ",") {
		t.Errorf("stored types %v, want %v (message %q)", types, wantTypes, pcap.Status.Message)
	}
}

func conditionOf(pcap *profilingv1alpha1.ProfileCapture, typ string) metav1.Condition {
	if c := meta.FindStatusCondition(pcap.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func TestProfileCapturesOnASimulatedCluster(t *testing.T) {
	t.Parallel()
	cc := startCaptureCluster(t)
	ctx := context.Background()
	const ns = "pcap"
	cc.appPod(t, ns, "api-0", cc.nodeNo, true, map[string]string{"app": "api"})
	cc.appPod(t, ns, "api-1", cc.nodeAg, true, map[string]string{"app": "api"})
	cc.appPod(t, ns, "opted-out", cc.nodeNo, false, map[string]string{"app": "api"})
	cc.appPod(t, ns, "other", cc.nodeNo, true, map[string]string{"app": "other"})
	cc.config(t, ns, "api", map[string]string{"app": "api"}, 3600)
	stop := runOperator(t, &testenv.Env{Config: cc.c.Config}, cc.options(0))
	parent := t // the restarted operator runs until the test ends, not its subtest

	t.Run("a user's capture of a pod on a node without an agent stores the app's profiles", func(t *testing.T) {
		name := cc.create(t, userCapture(ns, "api-0", 1))
		got := cc.finished(t, ns, name, 60*time.Second)
		if got.Status.Phase != profilingv1alpha1.CaptureStored {
			t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
		}
		checkStored(t, got, "cpu", "heap")
		if c := conditionOf(got, profilingv1alpha1.ConditionFlightRecorder); c.Status != metav1.ConditionFalse || c.Reason != "NoAgent" {
			t.Errorf("FlightRecorder condition %+v, want False NoAgent", c)
		}
		if got.Status.ProfilingConfig != ns+"/api" || got.Status.Node != cc.nodeNo || got.Status.StartTime == nil || got.Status.CompletionTime == nil {
			t.Errorf("status %+v", got.Status)
		}
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			var list eventsv1.EventList
			if err := cc.cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
				return false, err.Error()
			}
			onPod, onCapture := false, false
			for _, e := range list.Items {
				if e.Reason == "ProfileCaptureStored" && strings.Contains(e.Note, name) {
					onPod = onPod || e.Regarding.Kind == "Pod"
					onCapture = onCapture || e.Regarding.Kind == "ProfileCapture"
				}
			}
			return onPod && onCapture, fmt.Sprintf("events on the pod %v, on the capture %v", onPod, onCapture)
		})
	})

	refusals := []struct {
		name, pod, config, want string
	}{
		{"a pod that opted out is refused", "opted-out", "", `has not opted in to profiling`},
		{"a pod that does not exist is refused", "ghost", "", "pod pcap/ghost does not exist"},
		{"a config that does not select the pod is refused", "other", "api", "ProfilingConfig pcap/api does not select pod pcap/other"},
		{"a pod no config selects is refused", "other", "", "no ProfilingConfig selects pod pcap/other"},
		{"a config that does not exist is refused", "api-0", "nope", "ProfilingConfig pcap/nope does not exist"},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			pcap := userCapture(ns, r.pod, 1)
			if r.config != "" {
				pcap.Spec.ProfilingConfig = &profilingv1alpha1.ProfilingConfigReference{Name: r.config}
			}
			got := cc.finished(t, ns, cc.create(t, pcap), 30*time.Second)
			if got.Status.Phase != profilingv1alpha1.CaptureFailed || !strings.Contains(got.Status.Message, r.want) || len(got.Status.Profiles) != 0 {
				t.Errorf("phase %s message %q profiles %d, want Failed saying %q and nothing stored", got.Status.Phase, got.Status.Message, len(got.Status.Profiles), r.want)
			}
		})
	}

	t.Run("the agent's eBPF profile is stored beside the app's", func(t *testing.T) {
		cc.agent.set(http.StatusOK, "")
		name := cc.create(t, userCapture(ns, "api-1", 1))
		got := cc.finished(t, ns, name, 60*time.Second)
		if got.Status.Phase != profilingv1alpha1.CaptureStored {
			t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
		}
		checkStored(t, got, "cpu", "heap", profilingv1alpha1.ProfileTypeEBPFCPU)
		if c := conditionOf(got, profilingv1alpha1.ConditionFlightRecorder); c.Status != metav1.ConditionTrue {
			t.Errorf("FlightRecorder condition %+v, want True", c)
		}
		req := cc.agent.last()
		if req.path != "/flight/v1/pods/pcap/api-1" || req.auth == "" || req.auth != "Bearer "+cc.agent.token(t) {
			t.Errorf("agent asked %s with authorization %q", req.path, req.auth)
		}
		from, _ := time.Parse(time.RFC3339Nano, req.query.Get("from"))
		to, _ := time.Parse(time.RFC3339Nano, req.query.Get("to"))
		if d := got.CreationTimestamp.Sub(from); d < 19*time.Second || d > 21*time.Second || !to.After(got.Status.StartTime.Time) {
			t.Errorf("window [%s, %s] for a capture created at %s and started at %s, want from 20s before creation to after the start",
				from, to, got.CreationTimestamp, got.Status.StartTime)
		}
	})

	t.Run("an agent that answers 503 fails the capture with its words", func(t *testing.T) {
		cc.agent.set(http.StatusServiceUnavailable, "agent on node x cannot list pods: forbidden")
		got := cc.finished(t, ns, cc.create(t, userCapture(ns, "api-1", 1)), 60*time.Second)
		if got.Status.Phase != profilingv1alpha1.CaptureFailed || !strings.Contains(got.Status.Message, "cannot list pods: forbidden") ||
			!strings.Contains(got.Status.Message, cc.nodeAg) {
			t.Errorf("phase %s message %q, want Failed naming the node and the agent's message", got.Status.Phase, got.Status.Message)
		}
		checkStored(t, got, "cpu", "heap")
		cc.agent.set(http.StatusOK, "")
	})

	var firstThreshold string
	t.Run("a Threshold capture records the cooldown, the next one inside it is skipped", func(t *testing.T) {
		firstThreshold = cc.create(t, thresholdCapture(ns, "api-0", "api"))
		got := cc.finished(t, ns, firstThreshold, 60*time.Second)
		if got.Status.Phase != profilingv1alpha1.CaptureStored {
			t.Fatalf("phase %s: %s", got.Status.Phase, got.Status.Message)
		}
		var pc profilingv1alpha1.ProfilingConfig
		if err := cc.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api"}, &pc); err != nil {
			t.Fatal(err)
		}
		if len(pc.Status.LastTriggers) != 1 || pc.Status.LastTriggers[0].Capture != firstThreshold {
			t.Fatalf("lastTriggers %+v, want one naming %s", pc.Status.LastTriggers, firstThreshold)
		}
		second := cc.finished(t, ns, cc.create(t, thresholdCapture(ns, "api-0", "api")), 30*time.Second)
		if second.Status.Phase != profilingv1alpha1.CaptureSkipped || !strings.Contains(second.Status.Message, "in cooldown until") {
			t.Errorf("phase %s message %q, want Skipped in cooldown", second.Status.Phase, second.Status.Message)
		}
	})

	t.Run("the cooldown survives a restart, and a capture interrupted while Capturing runs again", func(t *testing.T) {
		stop()
		// What a stopped operator leaves: a capture marked Capturing whose trigger it recorded.
		interrupted := thresholdCapture(ns, "api-1", "api")
		name := cc.create(t, interrupted)
		var pc profilingv1alpha1.ProfilingConfig
		if err := cc.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api"}, &pc); err != nil {
			t.Fatal(err)
		}
		pod := &corev1.Pod{}
		if err := cc.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "api-1"}, pod); err != nil {
			t.Fatal(err)
		}
		pc.Status.LastTriggers = append(pc.Status.LastTriggers, profilingv1alpha1.PodTrigger{
			Pod: "api-1", UID: string(pod.UID), Time: metav1.Now(), Reason: "cpu", Capture: name})
		if err := cc.cl.Status().Update(ctx, &pc); err != nil {
			t.Fatal(err)
		}
		now := metav1.Now()
		interrupted.Status = profilingv1alpha1.ProfileCaptureStatus{Phase: profilingv1alpha1.CaptureCapturing, StartTime: &now}
		if err := cc.cl.Status().Update(ctx, interrupted); err != nil {
			t.Fatal(err)
		}
		skipped := cc.create(t, thresholdCapture(ns, "api-0", "api"))
		runOperator(parent, &testenv.Env{Config: cc.c.Config}, cc.options(0))
		if got := cc.finished(t, ns, skipped, 30*time.Second); got.Status.Phase != profilingv1alpha1.CaptureSkipped {
			t.Errorf("after the restart: phase %s message %q, want Skipped", got.Status.Phase, got.Status.Message)
		}
		if got := cc.finished(t, ns, name, 60*time.Second); got.Status.Phase != profilingv1alpha1.CaptureStored {
			t.Errorf("the interrupted capture: phase %s message %q, want Stored", got.Status.Phase, got.Status.Message)
		}
	})

	t.Run("a finished capture is deleted after its TTL", func(t *testing.T) {
		pcap := userCapture(ns, "ghost", 1)
		ttl := int32(2)
		pcap.Spec.TTLSecondsAfterFinished = &ttl
		name := cc.create(t, pcap)
		cc.finished(t, ns, name, 30*time.Second)
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			err := cc.cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &profilingv1alpha1.ProfileCapture{})
			return client.IgnoreNotFound(err) == nil && err != nil, fmt.Sprintf("get: %v", err)
		})
	})
}

func TestFinishedProfileCapturesAreBoundedPerNamespace(t *testing.T) {
	t.Parallel()
	cc := startCaptureCluster(t)
	ctx := context.Background()
	const ns = "bounded"
	if err := cc.cl.Create(ctx, namespaceObj(ns)); err != nil {
		t.Fatal(err)
	}
	runOperator(t, &testenv.Env{Config: cc.c.Config}, cc.options(3))
	var names []string
	for i := 0; i < 6; i++ {
		name := cc.create(t, userCapture(ns, "ghost", 1))
		cc.finished(t, ns, name, 30*time.Second) // one after the other: their completion times are ordered
		names = append(names, name)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		var list profilingv1alpha1.ProfileCaptureList
		if err := cc.cl.List(ctx, &list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		var left []string
		for _, p := range list.Items {
			left = append(left, p.Name)
		}
		want := names[3:]
		if len(left) != 3 {
			return false, fmt.Sprintf("left %v, want the 3 newest %v", left, want)
		}
		for _, w := range want {
			if !strings.Contains(strings.Join(left, ","), w) {
				return false, fmt.Sprintf("left %v, want the 3 newest %v", left, want)
			}
		}
		return true, ""
	})
}

// fakeAgent is an agent's flight recorder: a real listener on the agent pod's IP
// answering the §D protocol with a real (synthetic) pprof profile, or an error.
type fakeAgent struct {
	cl client.Client

	mu      sync.Mutex
	code    int
	message string
	reqs    []agentRequest
}

type agentRequest struct {
	path  string
	query url.Values
	auth  string
}

func startFakeAgent(t *testing.T, cl client.Client, addr string) *fakeAgent {
	t.Helper()
	a := &fakeAgent{cl: cl, code: http.StatusOK}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen on the agent pod's address %s: %v", addr, err)
	}
	srv := &http.Server{Handler: a, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return a
}

func (a *fakeAgent) set(code int, message string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.code, a.message = code, message
}

func (a *fakeAgent) last() agentRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.reqs) == 0 {
		return agentRequest{}
	}
	return a.reqs[len(a.reqs)-1]
}

// token reads the token the operator put in its Secret.
func (a *fakeAgent) token(t *testing.T) string {
	t.Helper()
	var s corev1.Secret
	if err := a.cl.Get(context.Background(), client.ObjectKey{Namespace: secretsNamespace, Name: operator.DefaultAgentTokenSecret}, &s); err != nil {
		t.Fatalf("the flight recorder token Secret: %v", err)
	}
	return string(s.Data[operator.TokenSecretKey])
}

func (a *fakeAgent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.reqs = append(a.reqs, agentRequest{path: r.URL.Path, query: r.URL.Query(), auth: r.Header.Get("Authorization")})
	code, msg := a.code, a.message
	a.mu.Unlock()
	if code != http.StatusOK {
		http.Error(w, msg, code)
		return
	}
	from, _ := time.Parse(time.RFC3339Nano, r.URL.Query().Get("from"))
	to, _ := time.Parse(time.RFC3339Nano, r.URL.Query().Get("to"))
	fn := &profile.Function{ID: 1, Name: "main.burn"}
	loc := &profile.Location{ID: 1, Line: []profile.Line{{Function: fn}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
		Sample:   []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{5, 50_000_000}, Label: map[string][]string{"pod": {"x"}}}},
		Location: []*profile.Location{loc}, Function: []*profile.Function{fn},
		TimeNanos: from.UnixNano(), DurationNanos: to.Sub(from).Nanoseconds(),
	}
	w.Header().Set("Content-Type", "application/vnd.google.protobuf+gzip")
	w.Header().Set("Kprof-Window-Start", from.Format(time.RFC3339Nano))
	w.Header().Set("Kprof-Window-End", to.Format(time.RFC3339Nano))
	_ = p.Write(w)
}
