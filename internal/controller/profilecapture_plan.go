package controller

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
)

// capturePlan is what executing one ProfileCapture needs.
type capturePlan struct {
	pod    *corev1.Pod
	config *profilingv1alpha1.ProfilingConfig
	group  string // the config's namespace/name
	target capture.Target
	policy capture.Policy
	reason string // stored with the profiles
}

// refusal says why a ProfileCapture cannot run; it ends Failed with the message.
type refusal struct{ reason, message string }

// plan checks that pcap may run and gathers what it needs. A pod that is missing, not
// annotated profiling.io/enabled: "true", or selected by no (or not by the named)
// ProfilingConfig is refused: creating ProfileCaptures must not profile pods that
// opted out. err is a transient failure (retried).
func (r *ProfileCaptureReconciler) plan(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture) (*capturePlan, *refusal, error) {
	podName := pcap.Namespace + "/" + pcap.Spec.Pod
	var pod corev1.Pod
	if err := r.Get(ctx, types.NamespacedName{Namespace: pcap.Namespace, Name: pcap.Spec.Pod}, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, &refusal{"PodNotFound", fmt.Sprintf("pod %s does not exist", podName)}, nil
		}
		return nil, nil, fmt.Errorf("get pod %s: %w", podName, err)
	}
	if v := pod.Annotations[profilingv1alpha1.AnnotationEnabled]; v != "true" {
		return nil, &refusal{"NotEnabled", fmt.Sprintf("pod %s has not opted in to profiling: its annotation %s is %q, not \"true\"",
			podName, profilingv1alpha1.AnnotationEnabled, v)}, nil
	}
	pc, ref, err := r.configFor(ctx, pcap, &pod)
	if err != nil || ref != nil {
		return nil, ref, err
	}
	t, why, terr := podtarget.Select(&pod)
	if why != "" {
		msg := fmt.Sprintf("pod %s cannot be captured: %s", podName, why)
		if terr != nil {
			msg += ": " + terr.Error()
		}
		return nil, &refusal{string(why), msg}, nil
	}
	group := groupOf(pc)
	t.Meta.Config = group
	if r.d.PortForward {
		t.BaseURL = podtarget.PortForwardURL(pod.Namespace, pod.Name, t.BaseURL)
	}
	store, err := r.d.Stores.Resolve(ctx, pc)
	if err != nil {
		var cerr *ErrConfig
		if errors.As(err, &cerr) {
			return nil, &refusal{cerr.Reason, fmt.Sprintf("storage of ProfilingConfig %s: %v", group, err)}, nil
		}
		return nil, nil, fmt.Errorf("storage of ProfilingConfig %s: %w", group, err)
	}
	p := policyFor(pc, store)
	p.Interval = 0
	if len(pcap.Spec.ProfileTypes) > 0 {
		p.Types = p.Types[:0:0]
		for _, typ := range pcap.Spec.ProfileTypes {
			p.Types = append(p.Types, capture.ProfileType(typ))
		}
	}
	if pcap.Spec.CPUDurationSeconds > 0 {
		p.CPUDuration = time.Duration(pcap.Spec.CPUDurationSeconds) * time.Second
	} else if pc.Spec.CPUProfileDurationSeconds <= 0 {
		p.CPUDuration = capture.DefaultCPUDuration(0)
	}
	if err := p.Validate(); err != nil {
		return nil, &refusal{"InvalidPolicy", fmt.Sprintf("ProfilingConfig %s: %v", group, err)}, nil
	}
	return &capturePlan{pod: &pod, config: pc, group: group, target: t, policy: p, reason: storedReason(pcap)}, nil, nil
}

// storedReason is the reason stored with the profiles: "threshold: <crossing>" or
// "manual[: <reason>]", the vocabulary the index sorts triggers by.
func storedReason(pcap *profilingv1alpha1.ProfileCapture) string {
	kind := capture.ReasonManual
	if pcap.Spec.Trigger == profilingv1alpha1.TriggerThreshold {
		kind = "threshold"
	}
	if pcap.Spec.Reason == "" {
		return kind
	}
	return kind + ": " + pcap.Spec.Reason
}

// configFor returns the ProfilingConfig pcap names, which must select pod, or the
// first (by namespace/name) that selects it.
func (r *ProfileCaptureReconciler) configFor(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture, pod *corev1.Pod) (*profilingv1alpha1.ProfilingConfig, *refusal, error) {
	podName := pod.Namespace + "/" + pod.Name
	if ref := pcap.Spec.ProfilingConfig; ref != nil {
		key := types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}
		if key.Namespace == "" {
			key.Namespace = pcap.Namespace
		}
		var pc profilingv1alpha1.ProfilingConfig
		if err := r.Get(ctx, key, &pc); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &refusal{"ConfigNotFound", fmt.Sprintf("ProfilingConfig %s does not exist", key)}, nil
			}
			return nil, nil, fmt.Errorf("get ProfilingConfig %s: %w", key, err)
		}
		if ok, why := selects(&pc, pod); !ok {
			return nil, &refusal{"NotSelected", fmt.Sprintf("ProfilingConfig %s does not select pod %s: %s", key, podName, why)}, nil
		}
		return &pc, nil, nil
	}
	var list profilingv1alpha1.ProfilingConfigList
	if err := r.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("list ProfilingConfigs: %w", err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return groupOf(&list.Items[i]) < groupOf(&list.Items[j]) })
	for i := range list.Items {
		if ok, _ := selects(&list.Items[i], pod); ok {
			return &list.Items[i], nil, nil
		}
	}
	return nil, &refusal{"NotSelected", fmt.Sprintf("no ProfilingConfig selects pod %s", podName)}, nil
}

// selects reports whether pc selects pod by namespace and label selector, and if not, why.
func selects(pc *profilingv1alpha1.ProfilingConfig, pod *corev1.Pod) (bool, string) {
	if pc.DeletionTimestamp != nil {
		return false, "it is being deleted"
	}
	if ns := selectorNamespace(pc); ns != pod.Namespace {
		return false, fmt.Sprintf("it selects pods of namespace %s", ns)
	}
	if pc.Spec.Selector.LabelSelector == nil {
		return true, ""
	}
	sel, err := metav1.LabelSelectorAsSelector(pc.Spec.Selector.LabelSelector)
	if err != nil {
		return false, fmt.Sprintf("its spec.selector.labelSelector is invalid: %v", err)
	}
	if !sel.Matches(labels.Set(pod.Labels)) {
		return false, fmt.Sprintf("the pod's labels do not match its selector %s", sel)
	}
	return true, ""
}
