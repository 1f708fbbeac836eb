package controller

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/trigger"
)

// ThresholdWatcher is the part of the trigger watcher the reconciler drives.
type ThresholdWatcher interface {
	Sync(group string, p trigger.Policy, targets []trigger.Target)
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
// Ready agent, agent → none), or stops watching.
func (r *ProfilingConfigReconciler) syncThresholds(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig, sel labels.Selector, selected []selectedPod, status *profilingv1alpha1.ProfilingConfigStatus) error {
	group := groupOf(pc)
	stop := func() {
		if r.Thresholds != nil {
			r.Thresholds.Remove(group)
		}
		meta.RemoveStatusCondition(&status.Conditions, profilingv1alpha1.ConditionMetricsAvailable)
	}
	if r.Thresholds == nil || !trigger.ThresholdsEnabled(pc) || sel == nil {
		stop()
		return nil
	}
	th := pc.Spec.Thresholds
	var agentNodes map[string]bool
	switch th.Source {
	case profilingv1alpha1.SourceAgent:
		stop()
		return nil
	case profilingv1alpha1.SourceMetricsServer:
	default: // auto
		nodes, err := r.Agents.ReadyNodes(ctx)
		if err != nil {
			return err
		}
		agentNodes = nodes
	}
	r.cooldowns.load(group, pc)
	targets := make([]trigger.Target, 0, len(selected))
	for _, s := range selected {
		if !agentNodes[s.pod.Spec.NodeName] {
			targets = append(targets, trigger.Target{ID: s.target.ID, Pod: s.pod})
		}
	}
	if agentNodes != nil && len(targets) == 0 && len(selected) > 0 {
		stop() // every selected pod is evaluated by the agent on its node
		return nil
	}
	r.Thresholds.Sync(group, trigger.Policy{
		Namespace:     selectorNamespace(pc),
		Selector:      sel,
		Rule:          trigger.RuleFor(th),
		CheckInterval: time.Duration(max(th.CheckIntervalSeconds, 10)) * time.Second,
	}, targets)

	var c metav1.Condition
	if err := r.results.metricsError(group); err != nil {
		c = condition(profilingv1alpha1.ConditionMetricsAvailable, metav1.ConditionFalse, ReasonMetricsUnavailable,
			fmt.Sprintf("cannot read pod usage from metrics.k8s.io (is metrics-server installed and its APIService available?): %v; scheduled captures go on", err))
	} else {
		c = condition(profilingv1alpha1.ConditionMetricsAvailable, metav1.ConditionTrue, "MetricsAvailable",
			fmt.Sprintf("pod usage is read from metrics.k8s.io every %ds", th.CheckIntervalSeconds))
	}
	c.ObservedGeneration = pc.Generation
	meta.SetStatusCondition(&status.Conditions, c)
	return nil
}

// thresholdReporter turns the watcher's observations into conditions and Events.
type thresholdReporter struct{ r *ProfilingConfigReconciler }

var _ trigger.Reporter = thresholdReporter{}

func (t thresholdReporter) MetricsUnavailable(group string, err error) {
	t.r.results.setMetricsError(group, err)
	if err != nil {
		ns, name := splitGroup(group)
		pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.r.results.uid(group)}}
		t.r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, ReasonMetricsUnavailable, "CheckThresholds",
			"cannot read pod usage from metrics.k8s.io: %v", err)
	}
	t.r.states.markDirty(group) // the MetricsAvailable condition comes from a full reconcile
	t.r.results.wake(group)
}

func (t thresholdReporter) Uncomputable(group string, pod *corev1.Pod, problems []string) {
	ns, name := splitGroup(group)
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.r.results.uid(group)}}
	note := fmt.Sprintf("cannot compute percentage for pod %s/%s: %v", pod.Namespace, pod.Name, problems)
	t.r.Recorder.Eventf(pod, pc, corev1.EventTypeWarning, ReasonCannotComputePercentage, "CheckThresholds", "%s", note)
	t.r.results.uncomputable(group, fmt.Sprintf("%s/%s: %v", pod.Namespace, pod.Name, problems))
}

func (t thresholdReporter) Triggered(group string, pod *corev1.Pod, c trigger.Crossing, l trigger.Latency) {
	ns, name := splitGroup(group)
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: t.r.results.uid(group)}}
	note := fmt.Sprintf("%s: ProfileCapture requested for pod %s/%s (usage sample to request: %s)", c.Reason(), pod.Namespace, pod.Name,
		(l.Detect + l.Decide).Round(time.Millisecond))
	t.r.Recorder.Eventf(pod, pc, corev1.EventTypeNormal, ReasonThresholdCrossed, "Capture", "%s", note)
	t.r.results.crossed(group, fmt.Sprintf("%s/%s (%s)", pod.Namespace, pod.Name, c.Reason()))
}

// NewThresholdReporter returns the watcher's Reporter for r.
func (r *ProfilingConfigReconciler) NewThresholdReporter() trigger.Reporter {
	return thresholdReporter{r}
}

// CooldownStore returns the watcher's cooldown store (status.lastTriggers).
func (r *ProfilingConfigReconciler) CooldownStore() trigger.CooldownStore { return r.cooldowns }

// InitThresholds creates the cooldown store; call it before building the watcher.
// reader (uncached) and writer persist each check's triggers in one status write.
func (r *ProfilingConfigReconciler) InitThresholds(reader client.Reader, writer client.Client) {
	r.cooldowns = newCooldowns()
	r.cooldowns.reader, r.cooldowns.writer = reader, writer
}
