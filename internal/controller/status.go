package controller

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
)

func condition(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	const maxMessage = 1024
	if len(msg) > maxMessage {
		msg = msg[:maxMessage-3] + "..."
	}
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg}
}

func readyReason(pc *profilingv1alpha1.ProfilingConfig, selected []capture.Target) string {
	switch {
	case len(selected) == 0:
		return "NoTargets"
	case pc.Spec.OnDemand == nil || !pc.Spec.OnDemand.Enabled:
		return "NoSchedule"
	}
	return "TargetsSelected"
}

func readyMessage(pc *profilingv1alpha1.ProfilingConfig, selected []capture.Target, skipped map[podtarget.SkipReason]int, store string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d pod(s) selected in namespace %s", len(selected), selectorNamespace(pc))
	if len(skipped) > 0 {
		reasons := make([]string, 0, len(skipped))
		for why, n := range skipped {
			reasons = append(reasons, fmt.Sprintf("%d %s", n, why))
		}
		sort.Strings(reasons)
		fmt.Fprintf(&b, "; annotated but not captured: %s", strings.Join(reasons, ", "))
	}
	if pc.Spec.OnDemand == nil || !pc.Spec.OnDemand.Enabled {
		b.WriteString("; onDemand is disabled, so nothing is captured on a schedule")
	}
	fmt.Fprintf(&b, "; storing to %s", store)
	return b.String()
}

// applyTally folds results gathered since the last status write into status.
func applyTally(status *profilingv1alpha1.ProfilingConfigStatus, t tally, generation int64) {
	status.TotalProfiles += t.profiles
	status.TotalFailures += t.failures
	status.TotalUploads += t.uploads
	if !t.lastProfile.IsZero() && (status.LastProfileTime == nil || t.lastProfile.After(status.LastProfileTime.Time)) {
		lt := metav1.NewTime(t.lastProfile.UTC().Truncate(1e9))
		status.LastProfileTime = &lt
	}
	if t.last != nil {
		var c metav1.Condition
		if t.last.Err == nil {
			c = condition(profilingv1alpha1.ConditionCapturing, metav1.ConditionTrue, "CaptureSucceeded",
				fmt.Sprintf("last capture: %s profile of %s stored as %s", t.last.Type, t.last.Target.Meta.Target, t.last.Key))
		} else {
			c = condition(profilingv1alpha1.ConditionCapturing, metav1.ConditionFalse, "CaptureFailed",
				fmt.Sprintf("last capture: %s profile of %s failed (%s): %v", t.last.Type, t.last.Target.Meta.Target, t.last.FailureReason, t.last.Err))
		}
		c.ObservedGeneration = generation
		meta.SetStatusCondition(&status.Conditions, c)
	}
	if meta.FindStatusCondition(status.Conditions, profilingv1alpha1.ConditionCapturing) == nil {
		c := condition(profilingv1alpha1.ConditionCapturing, metav1.ConditionUnknown, "NoCaptureYet", "no capture has finished yet")
		c.ObservedGeneration = generation
		meta.SetStatusCondition(&status.Conditions, c)
	}
}

// equalStatus reports whether a status write would change nothing (SetStatusCondition
// keeps a condition's transition time while its status stays the same).
func equalStatus(a, b *profilingv1alpha1.ProfilingConfigStatus) bool {
	return equality.Semantic.DeepEqual(a, b)
}
