package controller

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// cooldownVerdict decides a Threshold capture named capture of the pod uid against
// the config's lastTriggers: recorded when an entry already names this capture (a
// restart while capturing), else a non-empty skip message when the pod's last
// trigger puts crossedAt inside the cooldown.
func cooldownVerdict(triggers []profilingv1alpha1.PodTrigger, uid types.UID, capture string, cooldown time.Duration, crossedAt time.Time) (recorded bool, skip string) {
	for _, tr := range triggers {
		if tr.UID != string(uid) {
			continue
		}
		if tr.Capture == capture {
			return true, ""
		}
		if until := tr.Time.Add(cooldown); until.After(crossedAt) {
			return false, fmt.Sprintf("in cooldown until %s (last trigger %s: %s)",
				until.UTC().Format(time.RFC3339), tr.Time.UTC().Format(time.RFC3339), tr.Reason)
		}
	}
	return false, ""
}

// applyCooldown implements the cooldown of a Threshold capture (design §B): skip
// inside the cooldown, else record the trigger in the config's status.lastTriggers,
// naming pcap, before anything is captured. Conflicts are retried on a fresh copy, so
// of two captures of one pod racing, one records and the other is skipped.
func (r *ProfileCaptureReconciler) applyCooldown(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture, plan *capturePlan) (string, error) {
	crossedAt := r.now()
	if th := pcap.Spec.Threshold; th != nil && !th.CrossedAt.IsZero() && th.CrossedAt.Time.Before(crossedAt) {
		crossedAt = th.CrossedAt.Time
	}
	key := client.ObjectKeyFromObject(plan.config)
	var lastErr error
	for attempt := 0; attempt < 8; attempt++ {
		var pc profilingv1alpha1.ProfilingConfig
		if err := r.d.APIReader.Get(ctx, key, &pc); err != nil {
			return "", fmt.Errorf("read cooldowns of ProfilingConfig %s: %w", key, err)
		}
		var cooldown time.Duration
		if pc.Spec.Thresholds != nil {
			cooldown = time.Duration(pc.Spec.Thresholds.CooldownSeconds) * time.Second
		}
		recorded, skip := cooldownVerdict(pc.Status.LastTriggers, plan.pod.UID, pcap.Name, cooldown, crossedAt)
		if recorded || skip != "" {
			return skip, nil
		}
		// The trigger's time is the crossing's (rounded up as the watcher keeps it), so
		// the cooldown the watcher and the agents see is the one applied here.
		pc.Status.LastTriggers = withTrigger(pc.Status.LastTriggers, profilingv1alpha1.PodTrigger{
			Pod: plan.pod.Name, UID: string(plan.pod.UID), Time: ceilSecond(crossedAt),
			Reason: truncate(pcap.Spec.Reason, 256), Capture: pcap.Name,
		}, r.now(), cooldown)
		err := r.Status().Update(ctx, &pc)
		if err == nil {
			return "", nil
		}
		if !apierrors.IsConflict(err) {
			return "", fmt.Errorf("record trigger of pod %s/%s in ProfilingConfig %s: %w", plan.pod.Namespace, plan.pod.Name, key, err)
		}
		lastErr = err
	}
	return "", fmt.Errorf("record trigger of pod %s/%s in ProfilingConfig %s: still conflicting: %w", plan.pod.Namespace, plan.pod.Name, key, lastErr)
}
