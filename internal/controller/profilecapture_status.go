package controller

import (
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
)

// flightState is what became of the pod's eBPF profile.
type flightState int

const (
	flightDisabled flightState = iota // the operator asks no agent
	flightNoAgent                     // no Ready agent on the pod's node
	flightFetched                     // the agent answered with a profile (stored says how storing went)
	flightFailed                      // the agent could not be asked or answered with an error
)

// flightOutcome is the eBPF side of a capture.
type flightOutcome struct {
	state   flightState
	node    string
	from    time.Time
	to      time.Time
	err     error
	profile *capture.Profile // the agent's answer, to store
	stored  *capture.Result  // the result of storing it
}

// capturingStatus is the status of a capture that starts now.
func capturingStatus(prev profilingv1alpha1.ProfileCaptureStatus, group, node string, now time.Time) profilingv1alpha1.ProfileCaptureStatus {
	st := *prev.DeepCopy()
	st.Phase = profilingv1alpha1.CaptureCapturing
	st.ProfilingConfig = group
	st.Node = node
	if st.StartTime == nil {
		t := metav1.NewTime(now)
		st.StartTime = &t
	}
	st.Message = "capturing"
	meta.SetStatusCondition(&st.Conditions, conditionAt(profilingv1alpha1.ConditionComplete, metav1.ConditionFalse, "Capturing", "capturing", now))
	return st
}

// refusedStatus ends a capture that did not run: Failed (refused) or Skipped (cooldown).
func refusedStatus(prev profilingv1alpha1.ProfileCaptureStatus, phase profilingv1alpha1.CapturePhase, reason, msg string, now time.Time) profilingv1alpha1.ProfileCaptureStatus {
	st := *prev.DeepCopy()
	st.Phase = phase
	st.Message = truncate(msg, 4096)
	t := metav1.NewTime(now)
	st.CompletionTime = &t
	meta.SetStatusCondition(&st.Conditions, conditionAt(profilingv1alpha1.ConditionComplete, metav1.ConditionTrue, reason, msg, now))
	return st
}

// completedStatus folds the app's results and the eBPF outcome into the final status:
// Stored when every requested profile is stored (the eBPF one too, when an agent runs
// on the node), else Failed with what went wrong; stored profiles stay listed.
func completedStatus(prev profilingv1alpha1.ProfileCaptureStatus, results []capture.Result, fl flightOutcome, now time.Time) profilingv1alpha1.ProfileCaptureStatus {
	st := *prev.DeepCopy()
	st.Profiles = nil
	var stored, failures []string
	add := func(r capture.Result) {
		if r.Err != nil {
			failures = append(failures, r.Err.Error())
			return
		}
		stored = append(stored, string(r.Type))
		if len(st.Profiles) < profilingv1alpha1.MaxCapturedProfiles {
			st.Profiles = append(st.Profiles, profilingv1alpha1.CapturedProfile{
				Type: string(r.Type), Location: r.Location, Size: int64(r.Bytes), SHA256: r.SHA256,
			})
		}
	}
	for _, r := range results {
		add(r)
	}

	var fc metav1.Condition
	switch fl.state {
	case flightDisabled:
		fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionFalse, "Disabled",
			"the operator asks no agent for eBPF profiles", now)
	case flightNoAgent:
		fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionFalse, "NoAgent",
			fmt.Sprintf("no Ready kprof agent runs on node %s, so there is no eBPF profile of the pod", fl.node), now)
	case flightFailed:
		msg := fmt.Sprintf("eBPF profile from the agent on node %s: %v", fl.node, fl.err)
		failures = append(failures, msg)
		fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionFalse, "AgentError", msg, now)
	case flightFetched:
		switch {
		case fl.stored == nil:
			fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionFalse, "NotStored", "the eBPF profile was not stored", now)
		case fl.stored.Err != nil:
			add(*fl.stored)
			fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionFalse, "StoreFailed", fl.stored.Err.Error(), now)
		default:
			add(*fl.stored)
			fc = conditionAt(profilingv1alpha1.ConditionFlightRecorder, metav1.ConditionTrue, "Stored",
				fmt.Sprintf("eBPF CPU profile of %s to %s from the agent on node %s stored at %s", fl.from.UTC().Format(time.RFC3339),
					fl.to.UTC().Format(time.RFC3339), fl.node, fl.stored.Location), now)
		}
	}
	meta.SetStatusCondition(&st.Conditions, fc)

	t := metav1.NewTime(now)
	st.CompletionTime = &t
	var msg string
	if len(failures) == 0 && len(stored) > 0 {
		st.Phase = profilingv1alpha1.CaptureStored
		msg = "stored " + strings.Join(stored, ", ")
		if fl.state == flightNoAgent {
			msg += fmt.Sprintf("; no kprof agent runs on node %s, so no eBPF profile", fl.node)
		}
		meta.SetStatusCondition(&st.Conditions, conditionAt(profilingv1alpha1.ConditionComplete, metav1.ConditionTrue, "Stored", msg, now))
	} else {
		st.Phase = profilingv1alpha1.CaptureFailed
		msg = strings.Join(failures, "; ")
		if len(stored) > 0 {
			msg = "stored " + strings.Join(stored, ", ") + "; failed: " + msg
		}
		meta.SetStatusCondition(&st.Conditions, conditionAt(profilingv1alpha1.ConditionComplete, metav1.ConditionTrue, "Failed", msg, now))
	}
	st.Message = truncate(msg, 4096)
	return st
}
