package nodethreshold

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/agent/profile"
)

// t0 is the time of the first synthetic reading.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

const (
	uidA = "aaaaaaaa-0000-4000-8000-000000000001"
	uidB = "bbbbbbbb-0000-4000-8000-000000000002"
	cidA = "aa00000000000000000000000000000000000000000000000000000000000001"
	cidS = "aa00000000000000000000000000000000000000000000000000000000000002"
	cidB = "bb00000000000000000000000000000000000000000000000000000000000001"
)

// fakeAPI stands for the API server: configs as set, creates recorded (or failed).
type fakeAPI struct {
	mu      sync.Mutex
	configs []*profilingv1alpha1.ProfilingConfig
	synced  bool
	created []*profilingv1alpha1.ProfileCapture
	fail    error
}

func (f *fakeAPI) Configs() ([]*profilingv1alpha1.ProfilingConfig, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.configs, f.synced
}

func (f *fakeAPI) Create(_ context.Context, pc *profilingv1alpha1.ProfileCapture) (*profilingv1alpha1.ProfileCapture, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	out := pc.DeepCopy()
	out.Name = pc.GenerateName + "x1y2z"
	f.created = append(f.created, out)
	return out, nil
}

func (f *fakeAPI) start()                     {}
func (f *fakeAPI) stop(context.Context) error { return nil }

func (f *fakeAPI) set(configs ...*profilingv1alpha1.ProfilingConfig) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.configs, f.synced = configs, true
}

func (f *fakeAPI) captures() []*profilingv1alpha1.ProfileCapture {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*profilingv1alpha1.ProfileCapture(nil), f.created...)
}

type fakePods map[string]*corev1.Pod

func (p fakePods) PodByUID(uid string) *corev1.Pod { return p[uid] }

type pin struct {
	namespace, pod string
	from           time.Time
}

type fakePinner struct {
	mu   sync.Mutex
	pins []pin
}

func (f *fakePinner) Pin(ns, pod string, from time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pins = append(f.pins, pin{ns, pod, from})
}

// harness is a Thresholds on a fake API server, fed synthetic readings.
type harness struct {
	*Thresholds
	api  *fakeAPI
	pods fakePods
	pin  *fakePinner
	reg  *prometheus.Registry
	logs *syncBuffer
	now  time.Time // the fake clock, set by observe
}

func newHarness(t *testing.T, mutate ...func(*Config)) *harness {
	t.Helper()
	h := &harness{api: &fakeAPI{}, pods: fakePods{}, pin: &fakePinner{}, reg: prometheus.NewRegistry(), logs: &syncBuffer{}}
	cfg := Config{
		NodeName: "node-1", REST: &rest.Config{Host: "https://127.0.0.1:1"}, Pods: h.pods, Pinner: h.pin,
		Logger:   slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registry: h.reg,
		Now:      func() time.Time { return h.now },
	}
	for _, m := range mutate {
		m(&cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	th, err := newThresholds(cfg)
	if err != nil {
		t.Fatal(err)
	}
	th.api = h.api
	h.Thresholds = th
	if err := th.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := th.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return h
}

// observe feeds m and waits for the creates it started, so each reading sees the outcome
// of the previous one's (the agent's creates take milliseconds, readings a second).
func (h *harness) observe(m *profile.Metrics) {
	h.now = m.Time
	h.Observe(m)
	h.wg.Wait()
}

func (h *harness) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := label == ""
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					match = true
				}
			}
			if match {
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
	}
	return 0
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// reading is a usage reading at t0 + sec seconds.
func reading(sec float64, pts ...profile.Point) *profile.Metrics {
	return &profile.Metrics{Time: t0.Add(time.Duration(sec * float64(time.Second))), Points: pts}
}

// cpu is a container CPU counter (started at t0) of seconds.
func cpu(uid, cid, container string, seconds float64) profile.Point {
	return cpuFrom(uid, cid, container, t0, seconds)
}

func cpuFrom(uid, cid, container string, start time.Time, seconds float64) profile.Point {
	return profile.Point{Name: profile.ContainerCPUTime, Kind: profile.Counter, Unit: "s", Value: seconds, Start: start,
		Labels: pointLabels(uid, cid, container)}
}

func mem(uid, cid, container string, bytes float64) profile.Point {
	return profile.Point{Name: profile.ContainerMemoryUsage, Kind: profile.Gauge, Unit: "By", Value: bytes,
		Labels: pointLabels(uid, cid, container)}
}

func pointLabels(uid, cid, container string) map[string]string {
	l := map[string]string{"pod_uid": uid, "container_id": cid}
	if container != "" {
		l["container"] = container
	}
	return l
}

// ctr is a container with requests and limits ("" leaves one out).
func ctr(name, cpuReq, memReq, cpuLim, memLim string) corev1.Container {
	c := corev1.Container{Name: name}
	set := func(list *corev1.ResourceList, res corev1.ResourceName, v string) {
		if v == "" {
			return
		}
		if *list == nil {
			*list = corev1.ResourceList{}
		}
		(*list)[res] = resource.MustParse(v)
	}
	set(&c.Resources.Requests, corev1.ResourceCPU, cpuReq)
	set(&c.Resources.Requests, corev1.ResourceMemory, memReq)
	set(&c.Resources.Limits, corev1.ResourceCPU, cpuLim)
	set(&c.Resources.Limits, corev1.ResourceMemory, memLim)
	return c
}

// runningPod is an annotated, Running, Ready pod with an IP in namespace "apps".
func runningPod(name, uid string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID(uid),
			Labels:      map[string]string{"app": "shop"},
			Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true"}},
		Spec: corev1.PodSpec{NodeName: "node-1", Containers: containers},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// config is a ProfilingConfig in "apps" selecting app=shop with th.
func config(name string, th profilingv1alpha1.Thresholds) *profilingv1alpha1.ProfilingConfig {
	return &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "apps", Name: name, UID: types.UID("uid-" + name), ResourceVersion: "1"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:   profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "shop"}}},
			Thresholds: &th,
		},
	}
}

// cpuAt80 is thresholds at 80% CPU, 90% memory of the request, cooldown 60 s.
func cpuAt80() profilingv1alpha1.Thresholds {
	return profilingv1alpha1.Thresholds{CPUThresholdPercent: 80, MemoryThresholdPercent: 90, CooldownSeconds: 60, Basis: "Request"}
}

func mustQ(s string) resource.Quantity { return resource.MustParse(s) }

// qty is how a nanocore quantity of s prints.
func qty(s string) string {
	q := resource.MustParse(s)
	return resource.NewScaledQuantity(q.ScaledValue(resource.Nano), resource.Nano).String()
}
