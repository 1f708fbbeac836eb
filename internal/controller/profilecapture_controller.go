package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crcontroller "sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/log"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
)

// CaptureEngine is the part of the capture engine that executes ProfileCaptures.
type CaptureEngine interface {
	Capture(ctx context.Context, req capture.Request) []capture.Result
	StoreProfile(ctx context.Context, group string, t capture.Target, p capture.Policy, reason string, prof capture.Profile) capture.Result
}

var _ CaptureEngine = (*capture.Engine)(nil)

// Defaults of the ProfileCapture controller.
const (
	DefaultMaxCapturesPerNamespace = 100
	DefaultRecorderWindow          = 30 * time.Second
	DefaultRecorderPort            = 9092
	DefaultCaptureConcurrency      = 16
	defaultTTLSecondsAfterFinished = 86400
)

// Event reasons of ProfileCaptures.
const (
	ReasonCaptureStored  = "ProfileCaptureStored"
	ReasonCaptureRefused = "ProfileCaptureFailed"
	ReasonCaptureSkipped = "ProfileCaptureSkipped"
)

// ProfileCaptureReconciler executes ProfileCaptures: it checks the pod may be
// profiled (annotated, selected by a ProfilingConfig), applies the cooldown to
// Threshold captures, captures the app's pprof profiles with the config's policy and
// storage while it fetches the pod's eBPF profile from the agent on its node, writes
// the result into status, and deletes finished captures after their TTL or past the
// per-namespace bound.
type ProfileCaptureReconciler struct {
	client.Client
	d ProfileCaptureDeps

	// deleted remembers the captures this reconciler deleted that the cache may
	// still list, so that each is deleted once.
	deleted recentDeletes
}

// ProfileCaptureDeps are what a ProfileCaptureReconciler drives and reads.
type ProfileCaptureDeps struct {
	// Client reads the cache and writes status (required).
	Client client.Client
	// APIReader reads without the cache (the config's lastTriggers before recording
	// one, a capture the cache may not have seen finish) (required).
	APIReader client.Reader
	Engine    CaptureEngine        // required
	Stores    StoreResolver        // required
	Recorder  events.EventRecorder // required
	// Flight fetches eBPF profiles from agents; nil: none is asked for (FlightRecorder
	// condition Disabled).
	Flight FlightFetcher
	// Agents finds the agent pod of a node; nil: no agent anywhere.
	Agents *Agents
	// RecorderPort is the agents' flight recorder port (default DefaultRecorderPort).
	RecorderPort int
	// RecorderWindow is how far before the request the eBPF profile starts (default
	// DefaultRecorderWindow).
	RecorderWindow time.Duration
	// MaxPerNamespace bounds the finished ProfileCaptures kept per namespace (default
	// DefaultMaxCapturesPerNamespace).
	MaxPerNamespace int
	// MaxConcurrent captures run at once (default DefaultCaptureConcurrency).
	MaxConcurrent int
	// PortForward reaches pods through the API server (the engine's client dials it).
	PortForward bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// NewProfileCaptureReconciler returns the reconciler of d, its zero limits defaulted.
func NewProfileCaptureReconciler(d ProfileCaptureDeps) (*ProfileCaptureReconciler, error) {
	switch {
	case d.Client == nil, d.APIReader == nil:
		return nil, errors.New("ProfileCapture reconciler: Client and APIReader are required")
	case d.Engine == nil, d.Stores == nil, d.Recorder == nil:
		return nil, errors.New("ProfileCapture reconciler: Engine, Stores and Recorder are required")
	}
	d.RecorderPort = cmp.Or(d.RecorderPort, DefaultRecorderPort)
	d.RecorderWindow = cmp.Or(d.RecorderWindow, DefaultRecorderWindow)
	d.MaxPerNamespace = cmp.Or(d.MaxPerNamespace, DefaultMaxCapturesPerNamespace)
	d.MaxConcurrent = cmp.Or(d.MaxConcurrent, DefaultCaptureConcurrency)
	if d.Now == nil {
		d.Now = time.Now
	}
	return &ProfileCaptureReconciler{Client: d.Client, d: d}, nil
}

func (r *ProfileCaptureReconciler) now() time.Time { return r.d.Now() }

// Reconcile executes a pending (or interrupted) ProfileCapture, or garbage-collects a
// finished one.
func (r *ProfileCaptureReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var pcap profilingv1alpha1.ProfileCapture
	if err := r.Get(ctx, req.NamespacedName, &pcap); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get ProfileCapture %s: %w", req.NamespacedName, err)
	}
	if pcap.DeletionTimestamp != nil {
		return ctrl.Result{}, nil
	}
	if finished(pcap.Status.Phase) {
		return r.collect(ctx, &pcap)
	}
	// The cache may not have seen this capture finish yet: never run it twice.
	if err := r.d.APIReader.Get(ctx, req.NamespacedName, &pcap); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get ProfileCapture %s: %w", req.NamespacedName, err)
	}
	if finished(pcap.Status.Phase) {
		return r.collect(ctx, &pcap)
	}
	return r.execute(ctx, &pcap)
}

func finished(p profilingv1alpha1.CapturePhase) bool {
	return p == profilingv1alpha1.CaptureStored || p == profilingv1alpha1.CaptureFailed || p == profilingv1alpha1.CaptureSkipped
}

// execute runs pcap. A restart while Capturing comes back here and runs it again:
// the cooldown entry naming pcap lets it through.
func (r *ProfileCaptureReconciler) execute(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture) (ctrl.Result, error) {
	logger := log.FromContext(ctx).WithValues("capture", pcap.Namespace+"/"+pcap.Name, "pod", pcap.Spec.Pod)
	plan, ref, err := r.plan(ctx, pcap)
	if err != nil {
		return ctrl.Result{}, err
	}
	if ref != nil {
		logger.Info("ProfileCapture refused", "reason", ref.reason, "message", ref.message)
		return r.finish(ctx, pcap, nil, refusedStatus(pcap.Status, profilingv1alpha1.CaptureFailed, ref.reason, ref.message, r.now()))
	}
	if pcap.Spec.Trigger == profilingv1alpha1.TriggerThreshold {
		skip, err := r.applyCooldown(ctx, pcap, plan)
		if err != nil {
			return ctrl.Result{}, err
		}
		if skip != "" {
			logger.Info("ProfileCapture skipped", "message", skip)
			return r.finish(ctx, pcap, plan.pod, refusedStatus(pcap.Status, profilingv1alpha1.CaptureSkipped, "InCooldown", skip, r.now()))
		}
	}

	start := r.now()
	if pcap.Status.Phase != profilingv1alpha1.CaptureCapturing || pcap.Status.StartTime == nil {
		st := capturingStatus(pcap.Status, plan.group, plan.pod.Spec.NodeName, start)
		pcap.Status = st
		if err := r.Status().Update(ctx, pcap); err != nil {
			if apierrors.IsConflict(err) {
				return ctrl.Result{Requeue: true}, nil
			}
			return ctrl.Result{}, fmt.Errorf("mark ProfileCapture %s/%s Capturing: %w", pcap.Namespace, pcap.Name, err)
		}
	}
	logger.Info("capturing", "config", plan.group, "node", plan.pod.Spec.NodeName, "types", plan.policy.Types, "cpuDuration", plan.policy.CPUDuration)

	var (
		wg sync.WaitGroup
		fl flightOutcome
	)
	wg.Go(func() { fl = r.fetchFlight(ctx, pcap, plan, start) })
	results := r.d.Engine.Capture(ctx, capture.Request{
		Group: plan.group, Target: plan.target, Policy: plan.policy, Reason: plan.reason,
		ResetSchedule: pcap.Spec.Trigger == profilingv1alpha1.TriggerThreshold,
	})
	wg.Wait()
	if fl.profile != nil && ctx.Err() == nil {
		res := r.d.Engine.StoreProfile(ctx, plan.group, plan.target, plan.policy, plan.reason, *fl.profile)
		fl.stored = &res
	}
	if err := ctx.Err(); err != nil {
		// Shutting down: leave it Capturing; the next leader runs it again.
		return ctrl.Result{}, fmt.Errorf("capture %s/%s interrupted: %w", pcap.Namespace, pcap.Name, context.Cause(ctx))
	}
	st := completedStatus(pcap.Status, results, fl, r.now())
	logger.Info("ProfileCapture finished", "phase", st.Phase, "profiles", len(st.Profiles), "message", st.Message)
	return r.finish(ctx, pcap, plan.pod, st)
}

// finish writes a final status (retrying conflicts on a fresh copy, unless another
// run finished it meanwhile), records Events and bounds the namespace's captures.
func (r *ProfileCaptureReconciler) finish(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture, pod *corev1.Pod, st profilingv1alpha1.ProfileCaptureStatus) (ctrl.Result, error) {
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if !first {
			var fresh profilingv1alpha1.ProfileCapture
			if err := r.d.APIReader.Get(ctx, client.ObjectKeyFromObject(pcap), &fresh); err != nil {
				return err
			}
			if finished(fresh.Status.Phase) {
				*pcap = fresh
				return errAlreadyFinished
			}
			*pcap = fresh
		}
		first = false
		pcap.Status = st
		return r.Status().Update(ctx, pcap)
	})
	switch {
	case errors.Is(err, errAlreadyFinished), apierrors.IsNotFound(err):
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("write status of ProfileCapture %s/%s: %w", pcap.Namespace, pcap.Name, err)
	}
	r.recordEvents(pcap, pod)
	if err := r.enforceCount(ctx, pcap.Namespace); err != nil {
		log.FromContext(ctx).Error(err, "bound the finished ProfileCaptures of the namespace", "namespace", pcap.Namespace)
	}
	return ctrl.Result{RequeueAfter: r.ttlLeft(pcap)}, nil
}

var errAlreadyFinished = errors.New("ProfileCapture already finished")

// recordEvents reports the outcome on the capture and on the pod.
func (r *ProfileCaptureReconciler) recordEvents(pcap *profilingv1alpha1.ProfileCapture, pod *corev1.Pod) {
	typ, reason := corev1.EventTypeNormal, ReasonCaptureStored
	switch pcap.Status.Phase {
	case profilingv1alpha1.CaptureFailed:
		typ, reason = corev1.EventTypeWarning, ReasonCaptureRefused
	case profilingv1alpha1.CaptureSkipped:
		reason = ReasonCaptureSkipped
	}
	note := fmt.Sprintf("ProfileCapture %s: %s", pcap.Name, pcap.Status.Message)
	if pod == nil {
		r.d.Recorder.Eventf(pcap, nil, typ, reason, "Capture", "%s", note)
		return
	}
	r.d.Recorder.Eventf(pod, pcap, typ, reason, "Capture", "%s", note)
	r.d.Recorder.Eventf(pcap, pod, typ, reason, "Capture", "%s", note)
}

// SetupWithManager registers the reconciler.
func (r *ProfileCaptureReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&profilingv1alpha1.ProfileCapture{}).
		WithOptions(crcontroller.Options{MaxConcurrentReconciles: r.d.MaxConcurrent}).
		Named("profilecapture").
		Complete(r)
}

// conditionAt is condition with its transition time.
func conditionAt(typ string, status metav1.ConditionStatus, reason, msg string, now time.Time) metav1.Condition {
	c := condition(typ, status, reason, msg)
	c.LastTransitionTime = metav1.NewTime(now)
	return c
}
