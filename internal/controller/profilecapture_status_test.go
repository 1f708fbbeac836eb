package controller

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
)

func TestCooldownVerdict(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	entry := profilingv1alpha1.PodTrigger{Pod: "p", UID: "u", Time: metav1.NewTime(t0), Reason: "cpu 93%", Capture: "p-first"}
	tests := []struct {
		name         string
		capture      string
		crossedAt    time.Time
		wantRecorded bool
		wantSkip     string
	}{
		{"the capture the entry names goes on (a restart while capturing)", "p-first", t0.Add(time.Minute), true, ""},
		{"another capture crossing inside the cooldown is skipped", "p-second", t0.Add(time.Minute), false, "in cooldown until 2026-01-01T12:05:00Z (last trigger 2026-01-01T12:00:00Z: cpu 93%)"},
		{"another capture crossing after the cooldown is recorded", "p-second", t0.Add(5 * time.Minute), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec, skip := cooldownVerdict([]profilingv1alpha1.PodTrigger{entry}, types.UID("u"), tt.capture, 5*time.Minute, tt.crossedAt)
			if rec != tt.wantRecorded || skip != tt.wantSkip {
				t.Errorf("verdict (%v, %q), want (%v, %q)", rec, skip, tt.wantRecorded, tt.wantSkip)
			}
		})
	}
	t.Run("another pod's entry does not count", func(t *testing.T) {
		if rec, skip := cooldownVerdict([]profilingv1alpha1.PodTrigger{entry}, "other", "x", time.Hour, t0); rec || skip != "" {
			t.Errorf("verdict (%v, %q)", rec, skip)
		}
	})
}

func TestCompletedStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	ok := func(typ string) capture.Result {
		return capture.Result{Type: capture.ProfileType(typ), Location: "file:///p/" + typ, Bytes: 10, SHA256: "ab"}
	}
	failed := capture.Result{Type: "heap", Err: errors.New("capture ns/p heap: HTTP status 500")}
	ebpf := ok("ebpf-cpu")
	tests := []struct {
		name        string
		results     []capture.Result
		flight      flightOutcome
		wantPhase   profilingv1alpha1.CapturePhase
		wantTypes   string
		wantFlight  string // reason of the FlightRecorder condition
		wantMessage string
	}{
		{"no agent: the app's profiles are stored", []capture.Result{ok("cpu"), ok("heap")}, flightOutcome{state: flightNoAgent, node: "n1"},
			profilingv1alpha1.CaptureStored, "cpu,heap", "NoAgent", "no kprof agent runs on node n1"},
		{"the agent's profile is listed beside the app's", []capture.Result{ok("cpu")}, flightOutcome{state: flightFetched, node: "n1", stored: &ebpf},
			profilingv1alpha1.CaptureStored, "cpu,ebpf-cpu", "Stored", "stored cpu, ebpf-cpu"},
		{"an agent error fails the capture, stored profiles stay listed", []capture.Result{ok("cpu")},
			flightOutcome{state: flightFailed, node: "n1", err: errors.New("HTTP 401: bad token")},
			profilingv1alpha1.CaptureFailed, "cpu", "AgentError", "agent on node n1: HTTP 401: bad token"},
		{"a failed app profile fails the capture", []capture.Result{ok("cpu"), failed}, flightOutcome{state: flightDisabled},
			profilingv1alpha1.CaptureFailed, "cpu", "Disabled", "HTTP status 500"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := completedStatus(profilingv1alpha1.ProfileCaptureStatus{Phase: profilingv1alpha1.CaptureCapturing}, tt.results, tt.flight, now)
			var types []string
			for _, p := range st.Profiles {
				types = append(types, p.Type)
			}
			fc := meta.FindStatusCondition(st.Conditions, profilingv1alpha1.ConditionFlightRecorder)
			cc := meta.FindStatusCondition(st.Conditions, profilingv1alpha1.ConditionComplete)
			switch {
			case st.Phase != tt.wantPhase, strings.Join(types, ",") != tt.wantTypes, fc == nil || fc.Reason != tt.wantFlight,
				!strings.Contains(st.Message, tt.wantMessage), cc == nil || cc.Status != metav1.ConditionTrue, st.CompletionTime == nil:
				t.Errorf("status %+v", st)
			}
		})
	}
}

func TestOverCountPicksTheOldestFinished(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	mk := func(name string, phase profilingv1alpha1.CapturePhase, done time.Time, rv string) profilingv1alpha1.ProfileCapture {
		p := profilingv1alpha1.ProfileCapture{ObjectMeta: metav1.ObjectMeta{Name: name, ResourceVersion: rv}}
		p.Status.Phase = phase
		if !done.IsZero() {
			ct := metav1.NewTime(done)
			p.Status.CompletionTime = &ct
		}
		return p
	}
	items := []profilingv1alpha1.ProfileCapture{
		mk("new", profilingv1alpha1.CaptureStored, t0.Add(2*time.Second), "9"),
		mk("running", profilingv1alpha1.CaptureCapturing, time.Time{}, "1"),
		mk("same-second-later", profilingv1alpha1.CaptureFailed, t0, "8"),
		mk("same-second-earlier", profilingv1alpha1.CaptureSkipped, t0, "7"),
		mk("oldest", profilingv1alpha1.CaptureStored, t0.Add(-time.Hour), "20"),
	}
	var got []string
	for _, v := range overCount(items, 2) {
		got = append(got, v.Name)
	}
	if want := "oldest,same-second-earlier"; strings.Join(got, ",") != want {
		t.Errorf("deleted %v, want %s (running ones are never counted)", got, want)
	}
	if v := overCount(items, 4); len(v) != 0 {
		t.Errorf("within the bound, deleted %d", len(v))
	}
}

func TestThresholdCaptureFollowsTheSharedShape(t *testing.T) {
	long := strings.Repeat("p", 70)
	pod := podNamed(long, "node-a")
	got := ThresholdCapture(pod, &profilingv1alpha1.ProfilingConfigReference{Namespace: "ns", Name: "c"}, profilingv1alpha1.SourceMetricsServer,
		"cpu", "main", "cpu 93% of request ≥ 80%", RequesterOperator, time.Unix(100, 0))
	if got.GenerateName != long+"-" || got.Namespace != "ns" || got.Labels[profilingv1alpha1.LabelCaptureNode] != "node-a" {
		t.Errorf("metadata %+v", got.ObjectMeta)
	}
	if _, ok := got.Labels[profilingv1alpha1.LabelCapturePod]; ok {
		t.Errorf("a pod name longer than 63 characters is not a label value: %v", got.Labels)
	}
	if got.Spec.Trigger != profilingv1alpha1.TriggerThreshold || got.Spec.Threshold.Source != profilingv1alpha1.SourceMetricsServer ||
		got.Spec.Requester != "kprof-operator" || got.Spec.ProfilingConfig.Name != "c" || got.Spec.ProfileTypes != nil {
		t.Errorf("spec %+v", got.Spec)
	}
}

func podNamed(name, node string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
}
