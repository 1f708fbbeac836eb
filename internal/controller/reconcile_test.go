package controller

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/storage"
)

func webSpec() profilingv1alpha1.ProfilingConfigSpec {
	return profilingv1alpha1.ProfilingConfigSpec{
		Selector: profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}}},
		OnDemand: &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 60},
	}
}

func TestReconcileCapturesTheAnnotatedPodsItsSelectorMatches(t *testing.T) {
	web := map[string]string{"app": "web"}
	noIP := capturable("shop", "web-starting", "node-a", web)
	noIP.Status.PodIP = ""
	notAnnotated := capturable("shop", "web-plain", "node-a", web)
	notAnnotated.Annotations = nil
	h := newHarness(t, nil,
		profilingConfig("shop", "web", webSpec()),
		capturable("shop", "web-2", "node-a", web), capturable("shop", "web-1", "node-b", web), noIP, notAnnotated,
		capturable("shop", "db", "node-a", map[string]string{"app": "db"}),
		capturable("elsewhere", "web-x", "node-a", web))

	if res := h.reconcile("shop", "web"); res.RequeueAfter != 0 {
		t.Errorf("requeue after %s, want none", res.RequeueAfter)
	}
	if got := strings.Join(h.sched.targets["shop/web"], ","); got != "shop/web-1,shop/web-2" {
		t.Errorf("the engine captures %q, want the two capturable web pods of shop, sorted", got)
	}
	if p := h.sched.policy["shop/web"]; p.Interval != time.Minute || len(p.Types) != 2 {
		t.Errorf("policy %+v, want every minute, CPU and heap", p)
	}
	st := h.config("shop", "web").Status
	for typ, want := range map[string]string{
		profilingv1alpha1.ConditionReady:        "True/TargetsSelected",
		profilingv1alpha1.ConditionStorageReady: "True/LocalStorage",
		profilingv1alpha1.ConditionCapturing:    "Unknown/NoCaptureYet",
	} {
		if got := conditionString(&st, typ); got != want {
			t.Errorf("%s = %s, want %s", typ, got, want)
		}
	}
	want := "2 pod(s) selected in namespace shop; annotated but not captured: 1 NoPodIP; storing to fs:/profiles"
	if msg := conditionMessage(&st, profilingv1alpha1.ConditionReady); msg != want {
		t.Errorf("Ready message %q, want %q", msg, want)
	}
	if st.ActivePods != 2 || st.ObservedGeneration != 1 {
		t.Errorf("activePods %d observedGeneration %d, want 2 and 1", st.ActivePods, st.ObservedGeneration)
	}
}

func TestReconcileWithAnInvalidSelectorStopsCapturing(t *testing.T) {
	spec := webSpec()
	spec.Selector.LabelSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Near"}}}
	h := newHarness(t, nil, profilingConfig("shop", "web", spec), capturable("shop", "web-1", "node-a", nil))
	h.reconcile("shop", "web")
	st := h.config("shop", "web").Status
	if got := conditionString(&st, profilingv1alpha1.ConditionReady); got != "False/InvalidSelector" {
		t.Errorf("Ready = %s, want False/InvalidSelector", got)
	}
	if !contains(h.sched.removed, "shop/web") || h.sched.syncs != 0 || h.stores.resolved != 0 {
		t.Errorf("engine removed %v after %d syncs, %d stores resolved: want the config removed, nothing synced or resolved",
			h.sched.removed, h.sched.syncs, h.stores.resolved)
	}
	if st.ActivePods != 0 {
		t.Errorf("activePods %d, want 0", st.ActivePods)
	}
}

func TestReconcileOfAStoreThatCannotBeResolved(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		wantReady   string
		wantRequeue time.Duration
	}{
		{"a configuration problem waits for a change of the config",
			&ErrConfig{Reason: "SecretNotFound", Err: errors.New("Secret kprof-system/s3 not found")}, "False/SecretNotFound", 0},
		{"a failure to read the Secret is retried",
			errors.New("read Secret kprof-system/s3: connection refused"), "False/StorageUnavailable", storeRetry},
		{"a classified store error names its kind",
			&storage.Error{Op: "check", Kind: storage.KindAccessDenied, Err: errors.New("403")}, "False/AccessDenied", storeRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil, profilingConfig("shop", "web", webSpec()), capturable("shop", "web-1", "node-a", map[string]string{"app": "web"}))
			h.stores.set(tt.err, nil)
			if res := h.reconcile("shop", "web"); res.RequeueAfter != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", res.RequeueAfter, tt.wantRequeue)
			}
			st := h.config("shop", "web").Status
			if got := conditionString(&st, profilingv1alpha1.ConditionReady); got != tt.wantReady {
				t.Errorf("Ready = %s, want %s", got, tt.wantReady)
			}
			if got := conditionString(&st, profilingv1alpha1.ConditionStorageReady); got != "absent" {
				t.Errorf("StorageReady = %s of a store that was not resolved", got)
			}
			if !contains(h.sched.removed, "shop/web") || h.sched.syncs != 0 {
				t.Errorf("engine removed %v after %d syncs, want the config removed and nothing synced", h.sched.removed, h.sched.syncs)
			}

			// The next reconcile resolves the store again only when it was retried.
			h.stores.set(nil, nil)
			h.reconcile("shop", "web")
			wantResolved := 1
			if tt.wantRequeue > 0 {
				wantResolved = 2
			}
			if h.stores.resolved != wantResolved {
				t.Errorf("store resolved %d times after a second reconcile, want %d", h.stores.resolved, wantResolved)
			}
		})
	}
}

func TestAStoreThatStopsWorkingShowsInStatusWithOneWarning(t *testing.T) {
	spec := webSpec()
	spec.S3Config = &profilingv1alpha1.S3Config{Bucket: "profiles"}
	h := newHarness(t, nil, profilingConfig("shop", "web", spec))
	h.reconcile("shop", "web")
	st := h.config("shop", "web").Status
	if got := conditionString(&st, profilingv1alpha1.ConditionStorageReady); got != "True/Reachable" {
		t.Fatalf("StorageReady = %s, want True/Reachable", got)
	}
	h.events()

	down := &storage.Error{Op: "put", Kind: storage.KindEndpointUnreachable, Err: errors.New("connection refused")}
	for i := range 2 {
		h.stores.set(nil, down)
		h.fb.StoreHealthChanged([]string{"shop/web"})
		h.reconcile("shop", "web")
		st = h.config("shop", "web").Status
		if got := conditionString(&st, profilingv1alpha1.ConditionStorageReady); got != "False/EndpointUnreachable" {
			t.Errorf("reconcile %d: StorageReady = %s, want False/EndpointUnreachable", i, got)
		}
		got, want := h.events(), []string{"Warning StorageUnavailable"}
		if i > 0 {
			want = nil
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("reconcile %d: Events %q, want %q (one when the store stops working)", i, got, want)
		}
	}

	h.stores.set(nil, nil)
	h.fb.StoreHealthChanged([]string{"shop/web"})
	h.reconcile("shop", "web")
	st = h.config("shop", "web").Status
	if got := conditionString(&st, profilingv1alpha1.ConditionStorageReady); got != "True/Reachable" {
		t.Errorf("StorageReady = %s after the store recovered, want True/Reachable", got)
	}
}

func TestResultsAreFoldedIntoStatusWithoutSelectingThePodsAgain(t *testing.T) {
	h := newHarness(t, nil, profilingConfig("shop", "web", webSpec()), capturable("shop", "web-1", "node-a", map[string]string{"app": "web"}))
	h.reconcile("shop", "web")
	rv := h.config("shop", "web").ResourceVersion

	t.Run("a reconcile with nothing new writes nothing", func(t *testing.T) {
		h.reconcile("shop", "web")
		if got := h.config("shop", "web").ResourceVersion; got != rv || h.sched.syncs != 1 {
			t.Errorf("resourceVersion %s → %s, %d engine syncs: want no write and no new sync", rv, got, h.sched.syncs)
		}
	})

	ok := result("web-1", "")
	ok.Group, ok.Duration = "shop/web", 2*time.Second
	failed := result("web-1", "ConnectFailed")
	failed.Group = "shop/web"
	h.fb.OnResult(ok)
	h.fb.OnResult(ok)
	h.fb.OnResult(failed)
	if !h.fb.Uploaded("shop/web") {
		t.Fatal("an upload of a tracked config was not counted")
	}
	h.reconcile("shop", "web")
	st := h.config("shop", "web").Status
	if st.TotalProfiles != 2 || st.TotalFailures != 1 || st.TotalUploads != 1 {
		t.Errorf("profiles %d failures %d uploads %d, want 2, 1, 1", st.TotalProfiles, st.TotalFailures, st.TotalUploads)
	}
	if got := conditionString(&st, profilingv1alpha1.ConditionCapturing); got != "False/CaptureFailed" {
		t.Errorf("Capturing = %s, want False/CaptureFailed (the last result)", got)
	}
	if want := ok.Started.Add(ok.Duration); st.LastProfileTime == nil || !st.LastProfileTime.Time.Equal(want) {
		t.Errorf("lastProfileTime %v, want %v", st.LastProfileTime, want)
	}
	if h.sched.syncs != 1 {
		t.Errorf("%d engine syncs, want 1: results alone do not select the pods again", h.sched.syncs)
	}
	if st.ActivePods != 1 || conditionString(&st, profilingv1alpha1.ConditionReady) != "True/TargetsSelected" {
		t.Errorf("activePods %d Ready %s: what the full reconcile wrote must stay", st.ActivePods, conditionString(&st, profilingv1alpha1.ConditionReady))
	}

	t.Run("a new generation selects the pods again", func(t *testing.T) {
		pc := h.config("shop", "web")
		pc.Generation = 2
		if err := h.cl.Update(context.Background(), pc); err != nil {
			t.Fatal(err)
		}
		// The spec's write made the last status write's resourceVersion old, but
		// the cache's copy holds that write: it is the base, and no patch conflicts.
		if res := h.reconcile("shop", "web"); res.RequeueAfter != 0 {
			t.Errorf("requeue after %s, want none: a spec edit is no conflict", res.RequeueAfter)
		}
		if st := h.config("shop", "web").Status; h.sched.syncs != 2 || st.ObservedGeneration != 2 {
			t.Errorf("%d engine syncs, observedGeneration %d: want 2 and 2", h.sched.syncs, st.ObservedGeneration)
		}
	})
}

// TestAStatusConflictStartsAgainFromTheCache: the status patch carries the
// resourceVersion its base was read at; when another writer (a standby counting its
// spool's uploads) wrote since, the patch fails with a conflict instead of undoing
// that write, and the next reconcile folds the same results into the cache's copy.
func TestAStatusConflictStartsAgainFromTheCache(t *testing.T) {
	h := newHarness(t, nil, profilingConfig("shop", "web", webSpec()))
	h.reconcile("shop", "web")

	// A standby adds 5 uploads and records a trigger: the reconciler's last write
	// is no longer the newest.
	pc := h.config("shop", "web")
	pc.Status.TotalUploads += 5
	pc.Status.LastTriggers = []profilingv1alpha1.PodTrigger{{Pod: "web-1", UID: "uid-web-1", Time: metav1.Now(), Capture: "web-1-abcde"}}
	if err := h.cl.Status().Update(context.Background(), pc); err != nil {
		t.Fatal(err)
	}
	ok := result("web-1", "")
	ok.Group = "shop/web"
	h.fb.OnResult(ok)

	if res := h.reconcile("shop", "web"); res.RequeueAfter != conflictRetry {
		t.Fatalf("requeue after %s on a conflict, want %s", res.RequeueAfter, conflictRetry)
	}
	st := h.config("shop", "web").Status
	if st.TotalUploads != 5 || st.TotalProfiles != 0 {
		t.Fatalf("uploads %d profiles %d after the conflict, want the other writer's 5 and 0", st.TotalUploads, st.TotalProfiles)
	}

	h.reconcile("shop", "web")
	st = h.config("shop", "web").Status
	if st.TotalUploads != 5 || st.TotalProfiles != 1 {
		t.Errorf("uploads %d profiles %d, want the other writer's 5 uploads and the 1 profile kept for the retry", st.TotalUploads, st.TotalProfiles)
	}
	if len(st.LastTriggers) != 1 {
		t.Errorf("lastTriggers %v, want the other writer's entry kept (the reconciler's patch does not name it)", st.LastTriggers)
	}
}

func TestAStatusWriteThatFailsIsRetriedWithItsResults(t *testing.T) {
	fail := true
	funcs := &interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		if fail {
			return apierrors.NewServiceUnavailable("etcd is away")
		}
		return c.SubResource(sub).Patch(ctx, o, p, opts...)
	}}
	h := newHarness(t, funcs, profilingConfig("shop", "web", webSpec()))
	ok := result("web-1", "")
	ok.Group = "shop/web"
	h.fb.results.track("shop/web", "uid-web")
	h.fb.OnResult(ok)
	if _, err := h.r.Reconcile(context.Background(), requestFor("shop", "web")); err == nil {
		t.Fatal("a failed status write was not returned (no requeue)")
	}
	fail = false
	h.reconcile("shop", "web")
	st := h.config("shop", "web").Status
	if st.TotalProfiles != 1 || conditionString(&st, profilingv1alpha1.ConditionReady) != "True/NoTargets" {
		t.Errorf("profiles %d Ready %s, want the result and the full reconcile written by the retry",
			st.TotalProfiles, conditionString(&st, profilingv1alpha1.ConditionReady))
	}
	if h.sched.syncs != 2 {
		t.Errorf("%d engine syncs, want 2: what the failed write held is computed again", h.sched.syncs)
	}
}

func TestAConfigThatIsGoneIsForgotten(t *testing.T) {
	deleting := profilingConfig("shop", "old", webSpec())
	deleting.DeletionTimestamp, deleting.Finalizers = &metav1.Time{Time: time.Now()}, []string{"test/keep"}
	h := newHarness(t, nil, deleting)
	for _, name := range []string{"missing", "old"} {
		t.Run(name, func(t *testing.T) {
			group := "shop/" + name
			h.fb.results.track(group, "uid")
			h.reconcile("shop", name)
			if !contains(h.sched.removed, group) || !contains(h.stores.forgotten, group) || !contains(h.watcher.removed, group) {
				t.Errorf("engine removed %v, stores forgot %v, watcher removed %v: want %s in each", h.sched.removed, h.stores.forgotten, h.watcher.removed, group)
			}
			if h.fb.Uploaded(group) {
				t.Error("an upload of a forgotten config was counted")
			}
		})
	}
}

func TestAPodEventWakesTheConfigsSelectingItsNamespace(t *testing.T) {
	here := profilingConfig("shop", "here", profilingv1alpha1.ProfilingConfigSpec{})
	there := profilingConfig("ops", "there", profilingv1alpha1.ProfilingConfigSpec{Selector: profilingv1alpha1.ProfilingSelector{Namespace: "shop"}})
	other := profilingConfig("ops", "other", profilingv1alpha1.ProfilingConfigSpec{})
	h := newHarness(t, nil, here, there, other)
	for _, g := range [][2]string{{"shop", "here"}, {"ops", "there"}, {"ops", "other"}} {
		h.reconcile(g[0], g[1])
	}
	syncs := h.sched.syncs

	reqs := h.r.configsForPod(context.Background(), capturable("shop", "web-1", "node-a", nil))
	var got []string
	for _, r := range reqs {
		got = append(got, r.String())
	}
	if strings.Join(got, ",") != "ops/there,shop/here" && strings.Join(got, ",") != "shop/here,ops/there" {
		t.Errorf("a pod of shop wakes %v, want shop/here and ops/there", got)
	}
	for _, g := range [][2]string{{"shop", "here"}, {"ops", "there"}, {"ops", "other"}} {
		h.reconcile(g[0], g[1])
	}
	if h.sched.syncs != syncs+2 {
		t.Errorf("%d engine syncs after the pod event, want %d: the woken configs select their pods again", h.sched.syncs-syncs, 2)
	}

	agent := capturable("kprof-system", "agent-1", "node-a", map[string]string{"app.kubernetes.io/name": "kprof", "app.kubernetes.io/component": "agent"})
	if reqs := h.r.configsForPod(context.Background(), agent); len(reqs) != 3 {
		t.Errorf("an agent pod wakes %d configs, want all 3 (thresholds route by agent node)", len(reqs))
	}
}

func TestThresholdConfigsLoadTheirCooldownsAndReportMetrics(t *testing.T) {
	spec := webSpec()
	spec.Thresholds = &profilingv1alpha1.Thresholds{CPUThresholdPercent: 80, Source: profilingv1alpha1.SourceMetricsServer, CheckIntervalSeconds: 15, CooldownSeconds: 300}
	pc := profilingConfig("shop", "web", spec)
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	pc.Status.LastTriggers = []profilingv1alpha1.PodTrigger{{Pod: "web-1", UID: "uid-web-1", Time: metav1.NewTime(at)}}
	h := newHarness(t, nil, pc, capturable("shop", "web-1", "node-a", map[string]string{"app": "web"}))
	h.reconcile("shop", "web")

	if got := h.fb.Cooldowns().LastTrigger("shop/web", "uid-web-1"); !got.Equal(at) {
		t.Errorf("cooldown of web-1 %v, want the trigger in status (%v)", got, at)
	}
	if got := strings.Join(h.watcher.synced["shop/web"], ","); got != "web-1" {
		t.Errorf("the watcher evaluates %q, want web-1", got)
	}
	st := h.config("shop", "web").Status
	if got := conditionString(&st, profilingv1alpha1.ConditionMetricsAvailable); got != "True/MetricsAvailable" {
		t.Errorf("MetricsAvailable = %s, want True", got)
	}

	h.fb.ThresholdReporter().MetricsUnavailable("shop/web", errors.New("the server could not find the requested resource"))
	h.reconcile("shop", "web")
	st = h.config("shop", "web").Status
	if got := conditionString(&st, profilingv1alpha1.ConditionMetricsAvailable); got != "False/"+ReasonMetricsUnavailable {
		t.Errorf("MetricsAvailable = %s after the watcher could not read metrics, want False", got)
	}
	if got := h.events(); !contains(got, "Warning "+ReasonMetricsUnavailable) {
		t.Errorf("Events %q, want a MetricsUnavailable warning", got)
	}
}

func requestFor(ns, name string) ctrl.Request {
	return ctrl.Request{NamespacedName: client.ObjectKey{Namespace: ns, Name: name}}
}
