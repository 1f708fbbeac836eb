// Package controller reconciles ProfilingConfigs: it turns the selected, annotated
// pods into capture targets for the engine and keeps each config's status true.
package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
	"github.com/kprof/kprof/internal/storage"
)

// selectorNamespaceIndex indexes ProfilingConfigs by the namespace whose pods they select.
const selectorNamespaceIndex = "profiling.io/selector-namespace"

// Scheduler is the part of the capture engine the reconciler drives.
type Scheduler interface {
	Sync(group string, p capture.Policy, targets []capture.Target)
	Remove(group string)
}

// ProfilingConfigReconciler reconciles ProfilingConfig objects.
type ProfilingConfigReconciler struct {
	client.Client
	// APIReader reads without the cache (fresh copies for conflict retries).
	APIReader  client.Reader
	Scheduler  Scheduler
	Stores     StoreResolver
	Thresholds ThresholdWatcher // nil: threshold triggering off
	// Agents finds the kprof agent pods: thresholds of pods on a node with a Ready
	// agent are evaluated there (source auto); nil: no agents.
	Agents   *Agents
	Recorder events.EventRecorder
	// PortForward makes targets reachable through the API server's pods/portforward
	// instead of the pod IP (the engine's HTTP client must dial them).
	PortForward bool

	// StatusInterval gathers capture results for this long before they are folded into
	// status (default DefaultStatusInterval); EventInterval is the time between a
	// config's summary Events (default DefaultEventInterval).
	StatusInterval time.Duration
	EventInterval  time.Duration

	results   *results
	cooldowns *cooldowns
	states    *syncStates
}

// +kubebuilder:rbac:groups=profiling.io,resources=profilingconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=profiling.io,resources=profilingconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=get;create;update;patch
// +kubebuilder:rbac:groups="",namespace=kprof-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=metrics.k8s.io,resources=pods,verbs=get;list
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kprof-system,resources=leases,verbs=get;create;update

// OnResult is the capture engine's result callback; wire it into capture.Config.OnResult.
// Results arriving before SetupWithManager are dropped (the engine starts with the manager).
func (r *ProfilingConfigReconciler) OnResult(res capture.Result) {
	if r.results != nil {
		r.results.OnResult(res)
	}
}

// Reconcile brings the engine's targets for one ProfilingConfig in line with the pods
// it selects and writes the config's status. A reconcile woken only by capture
// results (nothing it selects from changed) folds them into status without selecting
// the pods again; status is written with a merge patch, and only when it changed.
func (r *ProfilingConfigReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	group := req.Namespace + "/" + req.Name

	var pc profilingv1alpha1.ProfilingConfig
	if err := r.Get(ctx, req.NamespacedName, &pc); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(group)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get ProfilingConfig %s: %w", group, err)
	}
	if pc.DeletionTimestamp != nil {
		r.forget(group)
		return ctrl.Result{}, nil
	}
	r.results.track(group, pc.UID)

	// The status this operator wrote last is fresher than a cache that has not
	// seen that write yet; once the cache holds it (perhaps with a spec edit
	// since), the cache's copy and its resourceVersion are the base.
	base, baseRV := r.states.lastWritten(group, pc.UID)
	if cached := ownedStatus(&pc.Status); base == nil || equalStatus(base, cached) {
		base, baseRV = cached, pc.ResourceVersion
	}
	status := base.DeepCopy()
	var requeue time.Duration // retry a transient storage failure
	if r.states.beginFull(group, pc.UID, pc.Generation) {
		var err error
		if requeue, err = r.sync(ctx, &pc, status); err != nil {
			r.states.markDirty(group)
			return ctrl.Result{}, err
		}
		if requeue > 0 {
			r.states.markDirty(group)
		} else {
			r.states.synced(group, pc.UID, pc.Generation)
		}
	}

	t := r.results.take(group, pc.UID)
	applyTally(status, t, pc.Generation)
	if equalStatus(base, status) {
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	if err := r.patchStatus(ctx, &pc, baseRV, status); err != nil {
		r.results.restore(group, t)
		r.states.markDirty(group) // what sync set in status is not written either
		if apierrors.IsConflict(err) {
			// Another writer (a standby counting the uploads of its spool, a
			// replica that led before) changed status since base: start again
			// from the cache's copy, once it has that write.
			r.states.forgetWritten(group)
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status of ProfilingConfig %s: %w", group, err)
	}
	// What the API server answered: it compares equal to the cache's copy once
	// the cache has this write.
	r.states.setWritten(group, pc.UID, ownedStatus(&pc.Status), pc.ResourceVersion)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// sync selects pc's pods, hands them to the engine and the threshold watcher, and
// sets the conditions and counts that come from them in status.
func (r *ProfilingConfigReconciler) sync(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig, status *profilingv1alpha1.ProfilingConfigStatus) (time.Duration, error) {
	logger := log.FromContext(ctx)
	group := groupOf(pc)
	status.ObservedGeneration = pc.Generation

	sel, pods, skipped, err := r.selectTargets(ctx, pc)
	selected := make([]capture.Target, 0, len(pods))
	ids := make(map[string]bool, len(pods))
	for i := range pods {
		pods[i].target.Meta.Config = group
		selected = append(selected, pods[i].target)
		ids[pods[i].target.ID] = true
	}
	var (
		ready   metav1.Condition
		requeue time.Duration
	)
	switch {
	case errors.Is(err, errInvalidSelector):
		r.stopCapturing(group)
		selected = nil
		ready = condition(profilingv1alpha1.ConditionReady, metav1.ConditionFalse, "InvalidSelector", err.Error())
	case err != nil:
		return 0, err
	default:
		store, serr := r.Stores.Resolve(ctx, pc)
		if serr != nil {
			r.stopCapturing(group)
			reason := "StorageUnavailable"
			var cerr *ErrConfig
			if errors.As(serr, &cerr) {
				reason = cerr.Reason
			} else if kind := storage.KindOf(serr); kind != "" && kind != storage.KindStoreError {
				reason = string(kind)
			}
			ready = condition(profilingv1alpha1.ConditionReady, metav1.ConditionFalse, reason, serr.Error())
			logger.Info("storage unusable", "config", group, "reason", reason, "error", serr.Error())
			if !errors.As(serr, &cerr) {
				requeue = 30 * time.Second // e.g. reading the Secret failed
			}
			break
		}
		r.Scheduler.Sync(group, policyFor(pc, store), selected)
		if err := r.syncThresholds(ctx, pc, sel, pods, status); err != nil {
			return 0, err
		}
		ready = condition(profilingv1alpha1.ConditionReady, metav1.ConditionTrue, readyReason(pc, selected), readyMessage(pc, selected, skipped, store.String()))
		r.setStorageCondition(pc, status)
	}
	r.results.retain(group, ids)
	status.ActivePods = int32(len(selected))
	ready.ObservedGeneration = pc.Generation
	meta.SetStatusCondition(&status.Conditions, ready)
	return requeue, nil
}

// ownedStatus is the part of status the reconciler writes (lastTriggers belongs to
// the ProfileCapture controller).
func ownedStatus(s *profilingv1alpha1.ProfilingConfigStatus) *profilingv1alpha1.ProfilingConfigStatus {
	out := s.DeepCopy()
	out.LastTriggers = nil
	return out
}

// conflictRetry is how soon a config whose status another writer changed is
// reconciled again, from the cache's copy.
const conflictRetry = time.Second

// patchStatus writes the reconciler's fields of status with a JSON merge patch that
// names every one of them and leaves status.lastTriggers to its writer. The patch
// holds resourceVersion, the version status was computed from: the counters are
// absolute, so a write over another writer's (a standby's upload count) must fail
// with a conflict rather than undo it.
func (r *ProfilingConfigReconciler) patchStatus(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig, resourceVersion string, s *profilingv1alpha1.ProfilingConfigStatus) error {
	conditions := s.Conditions
	if conditions == nil {
		conditions = []metav1.Condition{}
	}
	body := map[string]any{
		"metadata": map[string]any{"resourceVersion": resourceVersion},
		"status": map[string]any{
			"observedGeneration": s.ObservedGeneration,
			"activePods":         s.ActivePods,
			"totalProfiles":      s.TotalProfiles,
			"totalFailures":      s.TotalFailures,
			"totalUploads":       s.TotalUploads,
			"lastProfileTime":    s.LastProfileTime,
			"conditions":         conditions,
		}}
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	return r.Status().Patch(ctx, pc, client.RawPatch(types.MergePatchType, data))
}

// setStorageCondition reports whether pc's store accepts profiles.
func (r *ProfilingConfigReconciler) setStorageCondition(pc *profilingv1alpha1.ProfilingConfig, status *profilingv1alpha1.ProfilingConfigStatus) {
	var c metav1.Condition
	switch err := r.Stores.Health(pc); {
	case err == nil && pc.Spec.S3Config == nil:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionTrue, "LocalStorage", "profiles are written to the operator's profiles directory")
	case err == nil:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionTrue, "Reachable", fmt.Sprintf("s3://%s accepts uploads", pc.Spec.S3Config.Bucket))
	default:
		c = condition(profilingv1alpha1.ConditionStorageReady, metav1.ConditionFalse, string(storage.KindOf(err)),
			fmt.Sprintf("%v; captured profiles wait in the spool and are uploaded when the store works again", err))
	}
	c.ObservedGeneration = pc.Generation
	old := meta.FindStatusCondition(status.Conditions, profilingv1alpha1.ConditionStorageReady)
	if c.Status == metav1.ConditionFalse && (old == nil || old.Status != c.Status || old.Reason != c.Reason) {
		r.Recorder.Eventf(pc, nil, corev1.EventTypeWarning, "StorageUnavailable", "Upload", "%s", c.Message)
	}
	meta.SetStatusCondition(&status.Conditions, c)
}

// Uploaded counts a profile the remote store confirmed (a Stores callback). It reports
// false, counting nothing, for a config the reconciler does not track (yet).
func (r *ProfilingConfigReconciler) Uploaded(group string) bool { return r.results.uploaded(group) }

// Evicted reports a spooled profile dropped before upload (a Stores callback).
func (r *ProfilingConfigReconciler) Evicted(group, key, reason string) {
	r.results.evicted(group, key, reason)
}

// StoreHealthChanged wakes the configs using a store whose health changed (a Stores callback).
func (r *ProfilingConfigReconciler) StoreHealthChanged(groups []string) {
	r.states.markDirty(groups...)
	for _, g := range groups {
		r.results.wake(g)
	}
}

var errInvalidSelector = errors.New("invalid selector")

// selectedPod is a pod pc captures and its target.
type selectedPod struct {
	pod    *corev1.Pod
	target capture.Target
}

// selectTargets lists the pods pc selects and turns the capturable ones into targets.
// skipped counts annotated pods that are not (yet) targets, by reason.
func (r *ProfilingConfigReconciler) selectTargets(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig) (labels.Selector, []selectedPod, map[podtarget.SkipReason]int, error) {
	sel := labels.Everything()
	if pc.Spec.Selector.LabelSelector != nil {
		s, err := metav1.LabelSelectorAsSelector(pc.Spec.Selector.LabelSelector)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: spec.selector.labelSelector: %v", errInvalidSelector, err)
		}
		sel = s
	}
	var pods corev1.PodList
	// The cached pods are only read here (and by the threshold watcher): skip the
	// deep copy of every selected pod on every reconcile.
	if err := r.List(ctx, &pods, client.InNamespace(selectorNamespace(pc)), client.MatchingLabelsSelector{Selector: sel}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, nil, nil, fmt.Errorf("list pods for ProfilingConfig %s: %w", groupOf(pc), err)
	}
	selected := make([]selectedPod, 0, len(pods.Items))
	skipped := map[podtarget.SkipReason]int{}
	for i := range pods.Items {
		pod := &pods.Items[i]
		t, why, err := podtarget.Select(pod)
		switch {
		case why == podtarget.SkipNotAnnotated:
		case why != "":
			skipped[why]++
			if err != nil {
				r.Recorder.Eventf(pod, pc, corev1.EventTypeWarning, string(why), "Select", "%s", err.Error())
			}
		default:
			if r.PortForward {
				t.BaseURL = podtarget.PortForwardURL(pod.Namespace, pod.Name, t.BaseURL)
			}
			selected = append(selected, selectedPod{pod: pod, target: t})
		}
	}
	sort.Slice(selected, func(i, j int) bool { return selected[i].target.Meta.Target < selected[j].target.Meta.Target })
	return sel, selected, skipped, nil
}

// stopCapturing stops the schedule and the threshold checks of group.
func (r *ProfilingConfigReconciler) stopCapturing(group string) {
	r.Scheduler.Remove(group)
	if r.Thresholds != nil {
		r.Thresholds.Remove(group)
	}
	if r.cooldowns != nil {
		r.cooldowns.forget(group)
	}
}

// forget drops everything kept for a config that is gone.
func (r *ProfilingConfigReconciler) forget(group string) {
	r.stopCapturing(group)
	r.Stores.Forget(group)
	r.results.forget(group)
	r.states.forget(group)
}

func selectorNamespace(pc *profilingv1alpha1.ProfilingConfig) string {
	if pc.Spec.Selector.Namespace != "" {
		return pc.Spec.Selector.Namespace
	}
	return pc.Namespace
}

func policyFor(pc *profilingv1alpha1.ProfilingConfig, store storage.Store) capture.Policy {
	types := make([]capture.ProfileType, 0, len(pc.Spec.ProfileTypes))
	for _, t := range pc.Spec.ProfileTypes {
		types = append(types, capture.ProfileType(t))
	}
	if len(types) == 0 {
		types = []capture.ProfileType{capture.TypeCPU, capture.TypeHeap}
	}
	var interval time.Duration
	if pc.Spec.OnDemand != nil && pc.Spec.OnDemand.Enabled {
		interval = time.Duration(max(pc.Spec.OnDemand.IntervalSeconds, 30)) * time.Second
	}
	cpu := time.Duration(pc.Spec.CPUProfileDurationSeconds) * time.Second
	if cpu <= 0 {
		cpu = capture.DefaultCPUDuration(interval)
	}
	return capture.Policy{
		Types:       types,
		CPUDuration: cpu,
		Interval:    interval,
		Store:       store,
		KeyTemplate: pc.Spec.KeyTemplate,
		KeyPrefix:   keyPrefix(pc),
	}
}

// SetupWithManager registers the reconciler: it watches ProfilingConfigs, the pods in
// the namespaces they select, and the engine's results (to fold them into status).
func (r *ProfilingConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Recorder == nil {
		r.Recorder = mgr.GetEventRecorder("kprof-operator")
	}
	r.results = newResults(r.Recorder, newEventWriter(mgr.GetAPIReader(), mgr.GetClient()), r.StatusInterval, r.EventInterval)
	r.results.log = mgr.GetLogger().WithName("captures")
	r.states = newSyncStates()
	if err := mgr.Add(stopOnShutdown{r.results}); err != nil {
		return err
	}
	if runnable, ok := r.Stores.(manager.Runnable); ok {
		if err := mgr.Add(runnable); err != nil {
			return err
		}
	}
	ctx := context.Background()
	if err := mgr.GetFieldIndexer().IndexField(ctx, &profilingv1alpha1.ProfilingConfig{}, selectorNamespaceIndex,
		func(o client.Object) []string {
			return []string{selectorNamespace(o.(*profilingv1alpha1.ProfilingConfig))}
		}); err != nil {
		return fmt.Errorf("index ProfilingConfigs by selector namespace: %w", err)
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&profilingv1alpha1.ProfilingConfig{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(r.configsForPod)).
		WatchesRawSource(source.Channel(r.results.trigger, &handler.EnqueueRequestForObject{})).
		Named("profilingconfig").
		Complete(r)
}

// configsForPod maps a pod event to every ProfilingConfig selecting its namespace; the
// reconciler decides whether the pod is (still) a target.
func (r *ProfilingConfigReconciler) configsForPod(ctx context.Context, o client.Object) []reconcile.Request {
	var list profilingv1alpha1.ProfilingConfigList
	var opts []client.ListOption
	if !r.Agents.Is(o) {
		opts = append(opts, client.MatchingFields{selectorNamespaceIndex: o.GetNamespace()})
	} // else: an agent came or went: every config may route its pods anew
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list ProfilingConfigs for pod", "pod", o.GetNamespace()+"/"+o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, pc := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pc)})
		r.states.markDirty(groupOf(&pc))
	}
	return reqs
}

// stopOnShutdown writes the summary Events while the manager runs and unblocks
// result delivery when it stops.
type stopOnShutdown struct{ r *results }

func (s stopOnShutdown) Start(ctx context.Context) error {
	s.r.run(ctx)
	s.r.stop()
	return nil
}

func (s stopOnShutdown) NeedLeaderElection() bool { return false }
