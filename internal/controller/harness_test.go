package controller

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

// The unit tests of the reconcilers run them against controller-runtime's fake
// client: no API server, so the package's tests stay fast. The operator's envtest
// suite runs them against a real one.

func testScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(profilingv1alpha1.AddToScheme(s))
	return s
}

// newFakeClient returns a fake client holding objs, with the status subresources and
// the index the reconcilers use; funcs (optional) intercept its calls.
func newFakeClient(funcs *interceptor.Funcs, objs ...client.Object) client.WithWatch {
	b := fake.NewClientBuilder().WithScheme(testScheme()).WithObjects(objs...).
		WithStatusSubresource(&profilingv1alpha1.ProfilingConfig{}, &profilingv1alpha1.ProfileCapture{}).
		WithIndex(&profilingv1alpha1.ProfilingConfig{}, selectorNamespaceIndex, func(o client.Object) []string {
			return []string{selectorNamespace(o.(*profilingv1alpha1.ProfilingConfig))}
		})
	if funcs != nil {
		b = b.WithInterceptorFuncs(*funcs)
	}
	return b.Build()
}

// newTestFeedback returns a Feedback recording into a fake recorder; cl (may be nil)
// persists cooldowns. Results wait an hour before they wake the reconciler: a test
// reconciles when it wants.
func newTestFeedback(t *testing.T, cl client.Client) *Feedback {
	t.Helper()
	cfg := FeedbackConfig{Recorder: events.NewFakeRecorder(100), StatusInterval: time.Hour, EventInterval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	if cl != nil {
		cfg.Reader, cfg.Writer = cl, cl
	}
	fb, err := NewFeedback(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return fb
}

// fakeScheduler records what the reconciler hands the capture engine.
type fakeScheduler struct {
	mu      sync.Mutex
	syncs   int
	targets map[string][]string // group → target names
	policy  map[string]capture.Policy
	removed []string
}

func (s *fakeScheduler) Sync(group string, p capture.Policy, targets []capture.Target) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncs++
	names := []string{}
	for _, t := range targets {
		names = append(names, t.Meta.Target)
	}
	s.targets[group], s.policy[group] = names, p
}

func (s *fakeScheduler) Remove(group string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.targets, group)
	s.removed = append(s.removed, group)
}

// fakeStores is a StoreResolver whose answers a test sets.
type fakeStores struct {
	mu         sync.Mutex
	resolveErr error
	health     error
	resolved   int
	forgotten  []string
}

// namedStore is a store that keeps nothing.
type namedStore string

func (n namedStore) Put(context.Context, string, []byte, storage.Meta) error { return nil }
func (n namedStore) String() string                                          { return string(n) }

func (f *fakeStores) Resolve(context.Context, *profilingv1alpha1.ProfilingConfig) (storage.Store, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolved++
	if f.resolveErr != nil {
		return nil, f.resolveErr
	}
	return namedStore("fs:/profiles"), nil
}

func (f *fakeStores) Health(*profilingv1alpha1.ProfilingConfig) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.health
}

func (f *fakeStores) Forget(group string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.forgotten = append(f.forgotten, group)
}

func (f *fakeStores) set(resolveErr, health error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resolveErr, f.health = resolveErr, health
}

// harness is a ProfilingConfigReconciler built with NewProfilingConfigReconciler over
// a fake client and fakes of what it drives.
type harness struct {
	t       *testing.T
	cl      client.WithWatch
	sched   *fakeScheduler
	stores  *fakeStores
	watcher *recordingWatcher
	fb      *Feedback
	r       *ProfilingConfigReconciler
}

func newHarness(t *testing.T, funcs *interceptor.Funcs, objs ...client.Object) *harness {
	t.Helper()
	h := &harness{t: t, cl: newFakeClient(funcs, objs...),
		sched:   &fakeScheduler{targets: map[string][]string{}, policy: map[string]capture.Policy{}},
		stores:  &fakeStores{},
		watcher: &recordingWatcher{synced: map[string][]string{}},
	}
	h.fb = newTestFeedback(t, h.cl)
	var err error
	h.r, err = NewProfilingConfigReconciler(ProfilingConfigDeps{Client: h.cl, Scheduler: h.sched, Stores: h.stores,
		Thresholds: h.watcher, Feedback: h.fb, Agents: &Agents{Reader: h.cl, Namespace: "kprof-system", Selector: agentSelector(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// reconcile reconciles ns/name and fails the test on an error.
func (h *harness) reconcile(ns, name string) ctrl.Result {
	h.t.Helper()
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}})
	if err != nil {
		h.t.Fatalf("reconcile %s/%s: %v", ns, name, err)
	}
	return res
}

// config reads ns/name from the fake API server.
func (h *harness) config(ns, name string) *profilingv1alpha1.ProfilingConfig {
	h.t.Helper()
	var pc profilingv1alpha1.ProfilingConfig
	if err := h.cl.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, &pc); err != nil {
		h.t.Fatal(err)
	}
	return &pc
}

// events returns the Events recorded since the last call, as "Type Reason" strings.
func (h *harness) events() []string { return drain(h.fb.recorder.(*events.FakeRecorder)) }

// capturable is an annotated, Running, Ready pod with an IP on node.
func capturable(ns, name, node string, podLabels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Labels: podLabels,
			Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true"}},
		Spec: corev1.PodSpec{NodeName: node},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

func profilingConfig(ns, name string, spec profilingv1alpha1.ProfilingConfigSpec) *profilingv1alpha1.ProfilingConfig {
	return &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name), Generation: 1},
		Spec:       spec,
	}
}

func agentSelector(t *testing.T) labels.Selector {
	t.Helper()
	sel, err := labels.Parse(DefaultAgentSelector)
	if err != nil {
		t.Fatal(err)
	}
	return sel
}

// conditionString is "Status/Reason" of the condition typ, "absent" without one.
func conditionString(s *profilingv1alpha1.ProfilingConfigStatus, typ string) string {
	for _, c := range s.Conditions {
		if c.Type == typ {
			return string(c.Status) + "/" + c.Reason
		}
	}
	return "absent"
}

func conditionMessage(s *profilingv1alpha1.ProfilingConfigStatus, typ string) string {
	for _, c := range s.Conditions {
		if c.Type == typ {
			return c.Message
		}
	}
	return ""
}

func conditionTypes(s *profilingv1alpha1.ProfilingConfigStatus) string {
	var types []string
	for _, c := range s.Conditions {
		types = append(types, c.Type)
	}
	return strings.Join(types, ",")
}

func contains(list []string, s string) bool { return slices.Contains(list, s) }
