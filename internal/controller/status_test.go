package controller

import (
	"errors"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
	"github.com/kprof/kprof/internal/storage"
)

// The status of a config is a pure function of its inputs: these tests need no client.

func TestComputeStatus(t *testing.T) {
	scheduled := profilingConfig("shop", "web", webSpec())
	scheduled.Generation = 3
	thresholds := profilingConfig("shop", "hot", profilingv1alpha1.ProfilingConfigSpec{
		Thresholds: &profilingv1alpha1.Thresholds{CPUThresholdPercent: 80, CheckIntervalSeconds: 15}})
	old := &profilingv1alpha1.ProfilingConfigStatus{ObservedGeneration: 2, ActivePods: 4, TotalProfiles: 10}
	meta.SetStatusCondition(&old.Conditions, condition(profilingv1alpha1.ConditionMetricsAvailable, metav1.ConditionTrue, "MetricsAvailable", "m"))
	meta.SetStatusCondition(&old.Conditions, condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionTrue, "LocalStorage", "s"))
	meta.SetStatusCondition(&old.Conditions, condition(profilingv1alpha1.ConditionReady, metav1.ConditionTrue, "TargetsSelected", "r"))
	two := []capture.Target{{ID: "a"}, {ID: "b"}}

	tests := []struct {
		name  string
		pc    *profilingv1alpha1.ProfilingConfig
		sync  *syncOutcome
		check func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus)
	}{
		{"results alone change only the counters and Capturing", scheduled, nil, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
			if s.ObservedGeneration != 2 || s.ActivePods != 4 {
				t.Errorf("generation %d activePods %d, want what base had", s.ObservedGeneration, s.ActivePods)
			}
			if got := conditionTypes(s); got != "MetricsAvailable,StorageReady,Ready,Capturing" {
				t.Errorf("conditions %s", got)
			}
		}},
		{"a full reconcile of a scheduled config sets what it found", scheduled,
			&syncOutcome{selected: two, store: "fs:/p", metrics: &metricsOutcome{}}, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
				if s.ObservedGeneration != 3 || s.ActivePods != 2 {
					t.Errorf("generation %d activePods %d, want 3 and 2", s.ObservedGeneration, s.ActivePods)
				}
				if got := conditionTypes(s); got != "StorageReady,Ready,Capturing" {
					t.Errorf("conditions %s, want MetricsAvailable removed (thresholds not watched)", got)
				}
				for _, c := range s.Conditions {
					if c.Type != profilingv1alpha1.ConditionCapturing && c.ObservedGeneration != 3 {
						t.Errorf("%s observedGeneration %d, want 3", c.Type, c.ObservedGeneration)
					}
				}
			}},
		{"an invalid selector leaves the store's and the metrics' conditions", scheduled,
			&syncOutcome{selectErr: errors.New("invalid selector: bad")}, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
				if conditionString(s, profilingv1alpha1.ConditionReady) != "False/InvalidSelector" || s.ActivePods != 0 {
					t.Errorf("Ready %s activePods %d", conditionString(s, profilingv1alpha1.ConditionReady), s.ActivePods)
				}
				if got := conditionTypes(s); got != "MetricsAvailable,StorageReady,Ready,Capturing" {
					t.Errorf("conditions %s", got)
				}
			}},
		{"a store that cannot be resolved still counts the selected pods", scheduled,
			&syncOutcome{selected: two, storeErr: &ErrConfig{Reason: "InvalidSecret", Err: errors.New("no keys")}}, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
				if conditionString(s, profilingv1alpha1.ConditionReady) != "False/InvalidSecret" || s.ActivePods != 2 {
					t.Errorf("Ready %s activePods %d", conditionString(s, profilingv1alpha1.ConditionReady), s.ActivePods)
				}
				if conditionString(s, profilingv1alpha1.ConditionStorageReady) != "True/LocalStorage" {
					t.Errorf("StorageReady %s, want it unchanged", conditionString(s, profilingv1alpha1.ConditionStorageReady))
				}
			}},
		{"watched thresholds that cannot read metrics say so", thresholds,
			&syncOutcome{store: "fs:/p", metrics: &metricsOutcome{watched: true, err: errors.New("no APIService")}}, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
				if got := conditionString(s, profilingv1alpha1.ConditionMetricsAvailable); got != "False/"+ReasonMetricsUnavailable {
					t.Errorf("MetricsAvailable %s", got)
				}
				if got := conditionString(s, profilingv1alpha1.ConditionReady); got != "True/NoTargets" {
					t.Errorf("Ready %s, want True/NoTargets", got)
				}
			}},
		{"watched thresholds name their interval", thresholds,
			&syncOutcome{selected: two, store: "fs:/p", metrics: &metricsOutcome{watched: true}}, func(t *testing.T, s *profilingv1alpha1.ProfilingConfigStatus) {
				if got := conditionMessage(s, profilingv1alpha1.ConditionMetricsAvailable); got != "pod usage is read from metrics.k8s.io every 15s" {
					t.Errorf("MetricsAvailable message %q", got)
				}
				if got := conditionString(s, profilingv1alpha1.ConditionReady); got != "True/NoSchedule" {
					t.Errorf("Ready %s, want True/NoSchedule (no onDemand)", got)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := old.DeepCopy()
			got := computeStatus(tt.pc, base, tt.sync, tally{profiles: 1})
			if !equalStatus(base, old) {
				t.Error("computeStatus changed its base")
			}
			if got.TotalProfiles != old.TotalProfiles+1 {
				t.Errorf("totalProfiles %d, want the tally added to %d", got.TotalProfiles, old.TotalProfiles)
			}
			tt.check(t, got)
		})
	}
}

func TestReadyMessageNamesWhatIsNotCaptured(t *testing.T) {
	pc := profilingConfig("shop", "web", profilingv1alpha1.ProfilingConfigSpec{})
	got := readyMessage(pc, []capture.Target{{ID: "a"}}, map[podtarget.SkipReason]int{podtarget.SkipNotReady: 2, podtarget.SkipNoIP: 1}, "s3://b")
	want := "1 pod(s) selected in namespace shop; annotated but not captured: 1 NoPodIP, 2 NotReady; onDemand is disabled, so nothing is captured on a schedule; storing to s3://b"
	if got != want {
		t.Errorf("message\n%q, want\n%q", got, want)
	}
}

func TestRequeueAfter(t *testing.T) {
	tests := []struct {
		name string
		sync *syncOutcome
		want time.Duration
	}{
		{"a reconcile woken by results only", nil, 0},
		{"a healthy full reconcile", &syncOutcome{}, 0},
		{"an invalid selector waits for a change", &syncOutcome{selectErr: errInvalidSelector}, 0},
		{"a configuration problem waits for a change", &syncOutcome{storeErr: &ErrConfig{Reason: "SecretNotFound", Err: errors.New("x")}}, 0},
		{"any other store failure is retried", &syncOutcome{storeErr: errors.New("read Secret: timeout")}, storeRetry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := requeueAfter(tt.sync); got != tt.want {
				t.Errorf("requeueAfter = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestStorageWentBad(t *testing.T) {
	with := func(status metav1.ConditionStatus, reason string) *profilingv1alpha1.ProfilingConfigStatus {
		s := &profilingv1alpha1.ProfilingConfigStatus{}
		meta.SetStatusCondition(&s.Conditions, condition(profilingv1alpha1.ConditionStorageReady, status, reason, "m"))
		return s
	}
	none := &profilingv1alpha1.ProfilingConfigStatus{}
	tests := []struct {
		name         string
		base, status *profilingv1alpha1.ProfilingConfigStatus
		want         bool
	}{
		{"a first False warns", none, with(metav1.ConditionFalse, "AccessDenied"), true},
		{"True to False warns", with(metav1.ConditionTrue, "Reachable"), with(metav1.ConditionFalse, "AccessDenied"), true},
		{"a new reason warns", with(metav1.ConditionFalse, "EndpointUnreachable"), with(metav1.ConditionFalse, "AccessDenied"), true},
		{"the same problem does not warn again", with(metav1.ConditionFalse, "AccessDenied"), with(metav1.ConditionFalse, "AccessDenied"), false},
		{"a recovery does not warn", with(metav1.ConditionFalse, "AccessDenied"), with(metav1.ConditionTrue, "Reachable"), false},
		{"no condition does not warn", none, none, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := storageWentBad(tt.base, tt.status) != nil; got != tt.want {
				t.Errorf("storageWentBad = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStoreErrorReason(t *testing.T) {
	for err, want := range map[error]string{
		&ErrConfig{Reason: "InvalidS3Config", Err: errors.New("x")}:                         "InvalidS3Config",
		&storage.Error{Op: "check", Kind: storage.KindNoSuchBucket, Err: errors.New("404")}: "NoSuchBucket",
		&storage.Error{Op: "check", Kind: storage.KindStoreError, Err: errors.New("500")}:   "StorageUnavailable",
		errors.New("read Secret kprof-system/s3: connection refused"):                       "StorageUnavailable",
	} {
		if got := storeErrorReason(err); got != want {
			t.Errorf("storeErrorReason(%v) = %s, want %s", err, got, want)
		}
	}
}
