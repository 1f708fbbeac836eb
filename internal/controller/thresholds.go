package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// ThresholdWatcher is the part of the trigger watcher the reconciler drives.
type ThresholdWatcher interface {
	Sync(group string, p threshold.Policy, targets []threshold.Target)
	Remove(group string)
}

// Event reasons of threshold triggering.
const (
	ReasonThresholdCrossed        = "ThresholdCrossed"
	ReasonCannotComputePercentage = "CannotComputePercentage"
	ReasonMetricsUnavailable      = "MetricsUnavailable"
)

// syncThresholds hands pc's selected pods that the metrics-server path evaluates to
// the watcher (design §C: source metricsServer → all, auto → those on nodes without a
// Ready agent, agent → none), or stops watching. It returns what the
// MetricsAvailable condition is computed from.
func (r *ProfilingConfigReconciler) syncThresholds(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig, sel labels.Selector, selected []selectedPod) (*metricsOutcome, error) {
	group := groupOf(pc)
	stop := func() (*metricsOutcome, error) {
		if r.thresholds != nil {
			r.thresholds.Remove(group)
		}
		return &metricsOutcome{}, nil
	}
	if r.thresholds == nil || !threshold.ThresholdsEnabled(pc) || sel == nil {
		return stop()
	}
	th := pc.Spec.Thresholds
	var agentNodes map[string]bool
	switch th.Source {
	case profilingv1alpha1.SourceAgent:
		return stop()
	case profilingv1alpha1.SourceMetricsServer:
	default: // auto
		nodes, err := r.agents.ReadyNodes(ctx)
		if err != nil {
			return nil, err
		}
		agentNodes = nodes
	}
	r.fb.cooldowns.load(group, pc)
	targets := make([]threshold.Target, 0, len(selected))
	for _, s := range selected {
		if !agentNodes[s.pod.Spec.NodeName] {
			targets = append(targets, threshold.Target{ID: s.target.ID, Pod: s.pod})
		}
	}
	if agentNodes != nil && len(targets) == 0 && len(selected) > 0 {
		return stop() // every selected pod is evaluated by the agent on its node
	}
	r.thresholds.Sync(group, threshold.Policy{
		Namespace:     selectorNamespace(pc),
		Selector:      sel,
		Rule:          threshold.RuleFor(th),
		CheckInterval: time.Duration(max(th.CheckIntervalSeconds, 10)) * time.Second,
	}, targets)
	return &metricsOutcome{watched: true, err: r.fb.results.metricsError(group)}, nil
}

// thresholdReporter turns the watcher's observations into conditions and Events.
type thresholdReporter struct{ f *Feedback }

var _ threshold.Reporter = thresholdReporter{}

func (t thresholdReporter) MetricsUnavailable(group string, err error) {
	t.f.results.setMetricsError(group, err)
	if err != nil {
		ns, name := splitGroup(group)
		pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.f.results.uid(group)}}
		t.f.recorder.Eventf(pc, nil, corev1.EventTypeWarning, ReasonMetricsUnavailable, "CheckThresholds",
			"cannot read pod usage from metrics.k8s.io: %v", err)
	}
	t.f.states.markDirty(group) // the MetricsAvailable condition comes from a full reconcile
	t.f.results.wake(group)
}

func (t thresholdReporter) Uncomputable(group string, pod *corev1.Pod, problems []string) {
	ns, name := splitGroup(group)
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.f.results.uid(group)}}
	note := fmt.Sprintf("cannot compute percentage for pod %s/%s: %v", pod.Namespace, pod.Name, problems)
	t.f.recorder.Eventf(pod, pc, corev1.EventTypeWarning, ReasonCannotComputePercentage, "CheckThresholds", "%s", note)
	t.f.results.uncomputable(group, fmt.Sprintf("%s/%s: %v", pod.Namespace, pod.Name, problems))
}

func (t thresholdReporter) Triggered(group string, pod *corev1.Pod, c threshold.Crossing, l threshold.Latency) {
	ns, name := splitGroup(group)
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.f.results.uid(group)}}
	note := fmt.Sprintf("%s: ProfileCapture requested for pod %s/%s (usage sample to request: %s)", c.Reason(), pod.Namespace, pod.Name,
		(l.Detect + l.Decide).Round(time.Millisecond))
	t.f.recorder.Eventf(pod, pc, corev1.EventTypeNormal, ReasonThresholdCrossed, "Capture", "%s", note)
	t.f.results.crossed(group, fmt.Sprintf("%s/%s (%s)", pod.Namespace, pod.Name, c.Reason()))
}
