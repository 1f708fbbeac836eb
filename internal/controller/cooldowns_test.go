package controller

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/threshold"
)

func thresholdConfig(cooldown int32, triggers ...profilingv1alpha1.PodTrigger) *profilingv1alpha1.ProfilingConfig {
	pc := profilingConfig("shop", "web", profilingv1alpha1.ProfilingConfigSpec{
		Thresholds: &profilingv1alpha1.Thresholds{CPUThresholdPercent: 80, CooldownSeconds: cooldown}})
	pc.Status.LastTriggers = triggers
	return pc
}

func pod(name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name, UID: types.UID("uid-" + name)}}
}

func TestRecordAllPersistsACheckInOneStatusWrite(t *testing.T) {
	at := time.Now().Add(-time.Minute).Truncate(time.Second).Add(300 * time.Millisecond)
	recent := profilingv1alpha1.PodTrigger{Pod: "busy", UID: "uid-busy", Time: metav1.NewTime(at.Add(-10 * time.Second).Truncate(time.Second)), Capture: "busy-agent1", Reason: "agent"}
	patches := 0
	funcs := &interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, o client.Object, p client.Patch, opts ...client.SubResourcePatchOption) error {
		patches++
		if patches == 1 { // a ProfileCapture controller's write came first
			return apierrors.NewConflict(schema.GroupResource{Group: "profiling.io", Resource: "profilingconfigs"}, "web", nil)
		}
		return c.SubResource(sub).Patch(ctx, o, p, opts...)
	}}
	cl := newFakeClient(funcs, thresholdConfig(300, recent))
	cd := newCooldowns(cl, cl)

	err := cd.RecordAll(context.Background(), "shop/web", []threshold.Record{
		{Pod: pod("web-1"), At: at, Reason: "cpu 93% of request ≥ 80%"},
		{Pod: pod("busy"), At: at, Reason: "cpu 99%"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if patches != 2 {
		t.Errorf("%d status patches, want the conflict retried once", patches)
	}
	var pc profilingv1alpha1.ProfilingConfig
	if err := cl.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: "web"}, &pc); err != nil {
		t.Fatal(err)
	}
	byPod := map[string]profilingv1alpha1.PodTrigger{}
	for _, tr := range pc.Status.LastTriggers {
		byPod[tr.Pod] = tr
	}
	web := byPod["web-1"]
	if want := ThresholdCaptureName(pod("web-1"), at); web.Capture != want {
		t.Errorf("web-1's entry names capture %q, want %q (the one the watcher creates next)", web.Capture, want)
	}
	if want := at.Truncate(time.Second).Add(time.Second); !web.Time.Time.Equal(want) {
		t.Errorf("web-1's trigger time %v, want it rounded up to %v", web.Time, want)
	}
	if byPod["busy"].Capture != "busy-agent1" {
		t.Errorf("busy's entry %+v, want the agent's entry kept: the pod is inside its cooldown", byPod["busy"])
	}
	if got := cd.LastTrigger("shop/web", "uid-web-1"); !got.Equal(web.Time.Time) {
		t.Errorf("remembered trigger of web-1 %v, want %v", got, web.Time)
	}
}

func TestCooldownsWithoutAWriterStayInMemory(t *testing.T) {
	cd := newCooldowns(nil, nil)
	at := time.Date(2026, 1, 1, 12, 0, 0, 1, time.UTC)
	if err := cd.RecordAll(context.Background(), "shop/web", []threshold.Record{{Pod: pod("web-1"), At: at}}); err != nil {
		t.Fatal(err)
	}
	if got := cd.LastTrigger("shop/web", "uid-web-1"); !got.Equal(at.Truncate(time.Second).Add(time.Second)) {
		t.Errorf("last trigger %v", got)
	}
	t.Run("loading status keeps the later time", func(t *testing.T) {
		earlier := thresholdConfig(60, profilingv1alpha1.PodTrigger{UID: "uid-web-1", Time: metav1.NewTime(at.Add(-time.Hour))},
			profilingv1alpha1.PodTrigger{UID: "uid-web-2", Time: metav1.NewTime(at)})
		cd.load("shop/web", earlier)
		if got := cd.LastTrigger("shop/web", "uid-web-1"); got.Before(at) {
			t.Errorf("web-1 %v: an older entry in status replaced a newer trigger", got)
		}
		if got := cd.LastTrigger("shop/web", "uid-web-2"); !got.Equal(at) {
			t.Errorf("web-2 %v, want %v from status", got, at)
		}
	})
	t.Run("a forgotten config has none", func(t *testing.T) {
		cd.forget("shop/web")
		if got := cd.LastTrigger("shop/web", "uid-web-1"); !got.IsZero() {
			t.Errorf("last trigger %v after forget", got)
		}
	})
}

func TestWithTriggerKeepsThePodsInCooldownFirst(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	var list []profilingv1alpha1.PodTrigger
	for i := range profilingv1alpha1.MaxLastTriggers + 5 {
		list = append(list, profilingv1alpha1.PodTrigger{UID: string(rune('a'+i%26)) + string(rune('a'+i/26)), Time: metav1.NewTime(now.Add(-time.Duration(i) * time.Hour))})
	}
	old := list[len(list)-1]
	out := withTrigger(list, profilingv1alpha1.PodTrigger{UID: old.UID, Time: metav1.NewTime(now)}, now, 30*time.Minute)
	if len(out) != profilingv1alpha1.MaxLastTriggers {
		t.Fatalf("%d entries, want at most %d", len(out), profilingv1alpha1.MaxLastTriggers)
	}
	if out[0].UID != old.UID || !out[0].Time.Time.Equal(now) {
		t.Errorf("first entry %+v, want the new trigger (in its cooldown) replacing the pod's old one", out[0])
	}
	for i := 1; i < len(out); i++ {
		if out[i].UID == old.UID {
			t.Errorf("the pod has two entries")
		}
	}
}

// TestTwoThresholdCapturesOfOnePodRecordOneTrigger: the ProfileCapture controller
// records a Threshold capture's trigger in the config before it captures; a second
// capture of the pod inside the cooldown is skipped, and the first one, run again
// after a restart, finds its own entry and goes on.
func TestTwoThresholdCapturesOfOnePodRecordOneTrigger(t *testing.T) {
	crossed := time.Now().Add(-time.Minute)
	cl := newFakeClient(nil, thresholdConfig(300))
	r, err := NewProfileCaptureReconciler(ProfileCaptureDeps{Client: cl, APIReader: cl, Engine: nopEngine{}, Stores: &fakeStores{},
		Recorder: events.NewFakeRecorder(10)})
	if err != nil {
		t.Fatal(err)
	}
	var pc profilingv1alpha1.ProfilingConfig
	if err := cl.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: "web"}, &pc); err != nil {
		t.Fatal(err)
	}
	plan := &capturePlan{pod: pod("web-1"), config: &pc, group: "shop/web"}
	pcap := func(name string) *profilingv1alpha1.ProfileCapture {
		return &profilingv1alpha1.ProfileCapture{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: name},
			Spec: profilingv1alpha1.ProfileCaptureSpec{Pod: "web-1", Trigger: profilingv1alpha1.TriggerThreshold, Reason: "cpu 93%",
				Threshold: &profilingv1alpha1.ThresholdCrossing{CrossedAt: metav1.NewMicroTime(crossed)}}}
	}
	for _, tc := range []struct {
		capture  string
		wantSkip bool
	}{{"web-1-first", false}, {"web-1-second", true}, {"web-1-first", false}} {
		skip, err := r.applyCooldown(context.Background(), pcap(tc.capture), plan)
		if err != nil {
			t.Fatal(err)
		}
		if (skip != "") != tc.wantSkip {
			t.Errorf("%s: skip %q, want skipped %v", tc.capture, skip, tc.wantSkip)
		}
	}
	if err := cl.Get(context.Background(), types.NamespacedName{Namespace: "shop", Name: "web"}, &pc); err != nil {
		t.Fatal(err)
	}
	if len(pc.Status.LastTriggers) != 1 || pc.Status.LastTriggers[0].Capture != "web-1-first" {
		t.Errorf("lastTriggers %+v, want one entry naming web-1-first", pc.Status.LastTriggers)
	}
}

func TestNewProfileCaptureReconcilerDefaultsItsLimits(t *testing.T) {
	cl := newFakeClient(nil)
	if _, err := NewProfileCaptureReconciler(ProfileCaptureDeps{Client: cl, APIReader: cl}); err == nil {
		t.Error("a reconciler without an engine was built")
	}
	r, err := NewProfileCaptureReconciler(ProfileCaptureDeps{Client: cl, APIReader: cl, Engine: nopEngine{}, Stores: &fakeStores{}, Recorder: events.NewFakeRecorder(1)})
	if err != nil {
		t.Fatal(err)
	}
	if r.d.RecorderPort != DefaultRecorderPort || r.d.RecorderWindow != DefaultRecorderWindow ||
		r.d.MaxPerNamespace != DefaultMaxCapturesPerNamespace || r.d.MaxConcurrent != DefaultCaptureConcurrency || r.d.Now == nil {
		t.Errorf("deps %+v, want the defaults", r.d)
	}
}

func TestNewProfilingConfigReconcilerRequiresWhatItDrives(t *testing.T) {
	cl := newFakeClient(nil)
	fb := newTestFeedback(t, nil)
	for name, d := range map[string]ProfilingConfigDeps{
		"no client":    {Scheduler: &fakeScheduler{}, Stores: &fakeStores{}, Feedback: fb},
		"no scheduler": {Client: cl, Stores: &fakeStores{}, Feedback: fb},
		"no stores":    {Client: cl, Scheduler: &fakeScheduler{}, Feedback: fb},
		"no feedback":  {Client: cl, Scheduler: &fakeScheduler{}, Stores: &fakeStores{}},
	} {
		if _, err := NewProfilingConfigReconciler(d); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

// nopEngine captures nothing.
type nopEngine struct{}

func (nopEngine) Capture(context.Context, capture.Request) []capture.Result { return nil }
func (nopEngine) StoreProfile(context.Context, string, capture.Target, capture.Policy, string, capture.Profile) capture.Result {
	return capture.Result{}
}
