package controller

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
	"github.com/kprof/kprof/internal/storage"
)

// syncOutcome is what a full reconcile found out: the pods selected, the store and
// its health, the threshold watching. The config's status is computed from it
// (computeStatus) without another look at the cluster.
type syncOutcome struct {
	// selectErr is set when the selector is invalid: nothing is captured.
	selectErr error
	// selected are the targets handed to the engine, sorted; skipped counts the
	// annotated pods that are not (yet) targets, by reason.
	selected []capture.Target
	skipped  map[podtarget.SkipReason]int
	// storeErr is set when the config's store cannot be resolved: nothing is captured.
	storeErr error
	// store names the resolved store; health is its last upload's or check's error.
	store  string
	health error
	// metrics is what the threshold watching says about metrics.k8s.io; nil when
	// the thresholds were not synced (MetricsAvailable stays as it was).
	metrics *metricsOutcome
}

// metricsOutcome is the MetricsAvailable input: not watched (the condition is
// removed), or watched with the latest error reading pod usage.
type metricsOutcome struct {
	watched bool
	err     error
}

// storeRetry is how soon a config whose store failed for a reason other than its
// configuration (reading the Secret failed) is reconciled again.
const storeRetry = 30 * time.Second

// computeStatus returns the status of pc: base (the status last written) with what a
// full reconcile found (sync; nil when only results woke the reconciler) and the
// results gathered since (t) folded in. It is pure: every input is an argument.
// Conditions are set in the order they first appear in a config's status.
func computeStatus(pc *profilingv1alpha1.ProfilingConfig, base *profilingv1alpha1.ProfilingConfigStatus, sync *syncOutcome, t tally) *profilingv1alpha1.ProfilingConfigStatus {
	status := base.DeepCopy()
	if sync != nil {
		status.ObservedGeneration = pc.Generation
		var conds []metav1.Condition
		if c, remove := metricsCondition(pc, sync); remove {
			meta.RemoveStatusCondition(&status.Conditions, profilingv1alpha1.ConditionMetricsAvailable)
		} else if c != nil {
			conds = append(conds, *c)
		}
		if c := storageCondition(pc, sync); c != nil {
			conds = append(conds, *c)
		}
		conds = append(conds, readyCondition(pc, sync))
		for _, c := range conds {
			c.ObservedGeneration = pc.Generation
			meta.SetStatusCondition(&status.Conditions, c)
		}
		status.ActivePods = int32(len(sync.selected))
	}
	applyTally(status, t, pc.Generation)
	return status
}

// requeueAfter is when a config is reconciled again without a change to wake it:
// only a transient store failure asks for it.
func requeueAfter(sync *syncOutcome) time.Duration {
	var cerr *ErrConfig
	if sync == nil || sync.storeErr == nil || errors.As(sync.storeErr, &cerr) {
		return 0
	}
	return storeRetry
}

// readyCondition says whether pc captures, and what.
func readyCondition(pc *profilingv1alpha1.ProfilingConfig, sync *syncOutcome) metav1.Condition {
	switch {
	case sync.selectErr != nil:
		return condition(profilingv1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidSelector", sync.selectErr.Error())
	case sync.storeErr != nil:
		return condition(profilingv1alpha1.ConditionReady, metav1.ConditionFalse, storeErrorReason(sync.storeErr), sync.storeErr.Error())
	}
	return condition(profilingv1alpha1.ConditionReady, metav1.ConditionTrue, readyReason(pc, sync.selected),
		readyMessage(pc, sync.selected, sync.skipped, sync.store))
}

// storeErrorReason is the Ready=False reason of a store that cannot be resolved.
func storeErrorReason(err error) string {
	var cerr *ErrConfig
	if errors.As(err, &cerr) {
		return cerr.Reason
	}
	if kind := storage.KindOf(err); kind != "" && kind != storage.KindStoreError {
		return string(kind)
	}
	return "StorageUnavailable"
}

// storageCondition reports whether pc's store accepts profiles; nil when the store
// was not resolved (StorageReady stays as it was).
func storageCondition(pc *profilingv1alpha1.ProfilingConfig, sync *syncOutcome) *metav1.Condition {
	if sync.selectErr != nil || sync.storeErr != nil {
		return nil
	}
	var c metav1.Condition
	switch err := sync.health; {
	case err == nil && pc.Spec.S3Config == nil:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionTrue, "LocalStorage", "profiles are written to the operator's profiles directory")
	case err == nil:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionTrue, "Reachable", fmt.Sprintf("s3://%s accepts uploads", pc.Spec.S3Config.Bucket))
	default:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionFalse, string(storage.KindOf(err)),
			fmt.Sprintf("%v; captured profiles wait in the spool and are uploaded when the store works again", err))
	}
	return &c
}

// storageWentBad returns the StorageReady condition of status when it turned False,
// or False for another reason, since base: the moment for a Warning Event.
func storageWentBad(base, status *profilingv1alpha1.ProfilingConfigStatus) *metav1.Condition {
	c := meta.FindStatusCondition(status.Conditions, profilingv1alpha1.ConditionStorageReady)
	if c == nil || c.Status != metav1.ConditionFalse {
		return nil
	}
	if old := meta.FindStatusCondition(base.Conditions, profilingv1alpha1.ConditionStorageReady); old != nil && old.Status == c.Status && old.Reason == c.Reason {
		return nil
	}
	return c
}

// metricsCondition is the MetricsAvailable condition of pc: remove when the watcher
// does not read pc's pods' usage, nil when the thresholds were not synced.
func metricsCondition(pc *profilingv1alpha1.ProfilingConfig, sync *syncOutcome) (c *metav1.Condition, remove bool) {
	switch m := sync.metrics; {
	case m == nil:
		return nil, false
	case !m.watched:
		return nil, true
	case m.err != nil:
		mc := condition(profilingv1alpha1.ConditionMetricsAvailable, metav1.ConditionFalse, ReasonMetricsUnavailable,
			fmt.Sprintf("cannot read pod usage from metrics.k8s.io (is metrics-server installed and its APIService available?): %v; scheduled captures go on", m.err))
		return &mc, false
	default:
		mc := condition(profilingv1alpha1.ConditionMetricsAvailable, metav1.ConditionTrue, "MetricsAvailable",
			fmt.Sprintf("pod usage is read from metrics.k8s.io every %ds", pc.Spec.Thresholds.CheckIntervalSeconds))
		return &mc, false
	}
}

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
