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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
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
	scheduler   Scheduler
	stores      StoreResolver
	thresholds  ThresholdWatcher
	agents      *Agents
	fb          *Feedback
	portForward bool
}

// ProfilingConfigDeps are what a ProfilingConfigReconciler drives and reads.
type ProfilingConfigDeps struct {
	// Client reads the cache and writes status (required).
	Client    client.Client
	Scheduler Scheduler     // required
	Stores    StoreResolver // required
	// Thresholds is the metrics-server watcher; nil: threshold triggering off.
	Thresholds ThresholdWatcher
	// Agents finds the kprof agent pods: thresholds of pods on a node with a Ready
	// agent are evaluated there (source auto); nil: no agents.
	Agents *Agents
	// Feedback is what the engine, the stores and the watcher report back, built
	// before them (required).
	Feedback *Feedback
	// PortForward makes targets reachable through the API server's pods/portforward
	// instead of the pod IP (the engine's HTTP client must dial them).
	PortForward bool
}

// NewProfilingConfigReconciler returns the reconciler of d.
func NewProfilingConfigReconciler(d ProfilingConfigDeps) (*ProfilingConfigReconciler, error) {
	switch {
	case d.Client == nil:
		return nil, errors.New("ProfilingConfig reconciler: Client is required")
	case d.Scheduler == nil:
		return nil, errors.New("ProfilingConfig reconciler: Scheduler is required")
	case d.Stores == nil:
		return nil, errors.New("ProfilingConfig reconciler: Stores is required")
	case d.Feedback == nil:
		return nil, errors.New("ProfilingConfig reconciler: Feedback is required")
	}
	return &ProfilingConfigReconciler{Client: d.Client, scheduler: d.Scheduler, stores: d.Stores, thresholds: d.Thresholds,
		agents: d.Agents, fb: d.Feedback, portForward: d.PortForward}, nil
}

// +kubebuilder:rbac:groups=profiling.io,resources=profilingconfigs,verbs=get;list;watch
// +kubebuilder:rbac:groups=profiling.io,resources=profilingconfigs/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=get;create;update;patch
// +kubebuilder:rbac:groups="",namespace=kprof-system,resources=secrets,verbs=get
// +kubebuilder:rbac:groups=metrics.k8s.io,resources=pods,verbs=get;list
// +kubebuilder:rbac:groups=coordination.k8s.io,namespace=kprof-system,resources=leases,verbs=get;create;update

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
	results, states := r.fb.results, r.fb.states
	results.track(group, pc.UID)

	// The status this operator wrote last is fresher than a cache that has not
	// seen that write yet; once the cache holds it (perhaps with a spec edit
	// since), the cache's copy and its resourceVersion are the base.
	base, baseRV := states.lastWritten(group, pc.UID)
	if cached := ownedStatus(&pc.Status); base == nil || equalStatus(base, cached) {
		base, baseRV = cached, pc.ResourceVersion
	}
	var sync *syncOutcome
	if states.beginFull(group, pc.UID, pc.Generation) {
		var err error
		if sync, err = r.sync(ctx, &pc); err != nil {
			states.markDirty(group)
			return ctrl.Result{}, err
		}
		if requeueAfter(sync) > 0 {
			states.markDirty(group) // retry a transient storage failure
		} else {
			states.synced(group, pc.UID, pc.Generation)
		}
	}
	requeue := requeueAfter(sync)
	t := results.take(group, pc.UID)
	status := computeStatus(&pc, base, sync, t)
	if c := storageWentBad(base, status); c != nil {
		r.fb.recorder.Eventf(&pc, nil, corev1.EventTypeWarning, "StorageUnavailable", "Upload", "%s", c.Message)
	}
	if equalStatus(base, status) {
		return ctrl.Result{RequeueAfter: requeue}, nil
	}
	if err := r.patchStatus(ctx, &pc, baseRV, status); err != nil {
		results.restore(group, t)
		states.markDirty(group) // what sync set in status is not written either
		if apierrors.IsConflict(err) {
			// Another writer (a standby counting the uploads of its spool, a
			// replica that led before) changed status since base: start again
			// from the cache's copy, once it has that write.
			states.forgetWritten(group)
			return ctrl.Result{RequeueAfter: conflictRetry}, nil
		}
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("write status of ProfilingConfig %s: %w", group, err)
	}
	// What the API server answered: it compares equal to the cache's copy once
	// the cache has this write.
	states.setWritten(group, pc.UID, ownedStatus(&pc.Status), pc.ResourceVersion)
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// sync selects pc's pods, hands them to the engine and the threshold watcher, and
// returns what status is computed from.
func (r *ProfilingConfigReconciler) sync(ctx context.Context, pc *profilingv1alpha1.ProfilingConfig) (*syncOutcome, error) {
	group := groupOf(pc)
	sel, pods, skipped, err := r.selectTargets(ctx, pc)
	out := &syncOutcome{skipped: skipped, selected: make([]capture.Target, 0, len(pods))}
	ids := make(map[string]bool, len(pods))
	for i := range pods {
		pods[i].target.Meta.Config = group
		out.selected = append(out.selected, pods[i].target)
		ids[pods[i].target.ID] = true
	}
	switch {
	case errors.Is(err, errInvalidSelector):
		r.stopCapturing(group)
		out.selectErr = err
	case err != nil:
		return nil, err
	default:
		store, serr := r.stores.Resolve(ctx, pc)
		if serr != nil {
			r.stopCapturing(group)
			out.storeErr = serr
			log.FromContext(ctx).Info("storage unusable", "config", group, "reason", storeErrorReason(serr), "err", serr)
			break
		}
		r.scheduler.Sync(group, policyFor(pc, store), out.selected)
		if out.metrics, err = r.syncThresholds(ctx, pc, sel, pods); err != nil {
			return nil, err
		}
		out.store, out.health = store.String(), r.stores.Health(pc)
	}
	r.fb.results.retain(group, ids)
	return out, nil
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
				r.fb.recorder.Eventf(pod, pc, corev1.EventTypeWarning, string(why), "Select", "%s", err.Error())
			}
		default:
			if r.portForward {
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
	r.scheduler.Remove(group)
	if r.thresholds != nil {
		r.thresholds.Remove(group)
	}
	r.fb.cooldowns.forget(group)
}

// forget drops everything kept for a config that is gone.
func (r *ProfilingConfigReconciler) forget(group string) {
	r.stopCapturing(group)
	r.stores.Forget(group)
	r.fb.results.forget(group)
	r.fb.states.forget(group)
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
	if err := mgr.Add(r.fb); err != nil {
		return err
	}
	if runnable, ok := r.stores.(manager.Runnable); ok {
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
		WatchesRawSource(source.Channel(r.fb.results.trigger, &handler.EnqueueRequestForObject{})).
		Named("profilingconfig").
		Complete(r)
}

// configsForPod maps a pod event to every ProfilingConfig selecting its namespace; the
// reconciler decides whether the pod is (still) a target.
func (r *ProfilingConfigReconciler) configsForPod(ctx context.Context, o client.Object) []reconcile.Request {
	var list profilingv1alpha1.ProfilingConfigList
	var opts []client.ListOption
	if !r.agents.Is(o) {
		opts = append(opts, client.MatchingFields{selectorNamespaceIndex: o.GetNamespace()})
	} // else: an agent came or went: every config may route its pods anew
	if err := r.List(ctx, &list, opts...); err != nil {
		log.FromContext(ctx).Error(err, "list ProfilingConfigs for pod", "pod", o.GetNamespace()+"/"+o.GetName())
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, pc := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&pc)})
		r.fb.states.markDirty(groupOf(&pc))
	}
	return reqs
}
