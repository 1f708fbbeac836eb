package controller

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// RequesterOperator is spec.requester of the captures the metrics-server path creates.
const RequesterOperator = "kprof-operator"

// maxGenerateName leaves room for the 5 characters the API server appends.
const maxGenerateName = 253 - 5

// ThresholdCapture returns the ProfileCapture of a crossing (design §A): in the pod's
// namespace, named after the pod, labelled with the pod and its node, naming the
// config whose thresholds crossed.
func ThresholdCapture(pod *corev1.Pod, config *profilingv1alpha1.ProfilingConfigReference, source profilingv1alpha1.ThresholdSource,
	resource, container, reason, requester string, crossedAt time.Time) *profilingv1alpha1.ProfileCapture {
	prefix := pod.Name
	if len(prefix) > maxGenerateName-1 {
		prefix = prefix[:maxGenerateName-1]
	}
	labels := map[string]string{}
	if len(pod.Name) <= 63 {
		labels[profilingv1alpha1.LabelCapturePod] = pod.Name
	}
	if n := pod.Spec.NodeName; n != "" && len(n) <= 63 {
		labels[profilingv1alpha1.LabelCaptureNode] = n
	}
	return &profilingv1alpha1.ProfileCapture{
		ObjectMeta: metav1.ObjectMeta{Namespace: pod.Namespace, GenerateName: prefix + "-", Labels: labels},
		Spec: profilingv1alpha1.ProfileCaptureSpec{
			Pod:             pod.Name,
			Reason:          truncate(reason, 256),
			ProfilingConfig: config,
			Requester:       requester,
			Trigger:         profilingv1alpha1.TriggerThreshold,
			Threshold: &profilingv1alpha1.ThresholdCrossing{
				Source: source, Resource: resource, Container: container, CrossedAt: metav1.NewMicroTime(crossedAt),
			},
		},
	}
}

// ThresholdCaptureName is the name of the ProfileCapture the metrics-server watcher
// creates for pod's trigger at: known before it is created, so that the trigger's
// cooldown record can name it (RecordAll). The suffix is like the API server's
// generated names: 5 characters, here from the pod's UID and the trigger time.
func ThresholdCaptureName(pod *corev1.Pod, at time.Time) string {
	prefix := pod.Name
	if len(prefix) > maxGenerateName-1 {
		prefix = prefix[:maxGenerateName-1]
	}
	sum := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d", pod.UID, at.UnixNano())))
	const alphabet = "bcdfghjklmnpqrstvwxz2456789" // the API server's: no vowels, no 0 1 3
	suffix := make([]byte, 5)
	for i := range suffix {
		suffix[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return prefix + "-" + string(suffix)
}

// captureCreator is the metrics-server watcher's Capturer: every trigger creates a
// ProfileCapture, which the ProfileCapture controller executes.
type captureCreator struct{ c client.Client }

var _ threshold.Capturer = captureCreator{}

// NewCaptureCreator returns the watcher's Capturer creating ProfileCaptures with c.
func NewCaptureCreator(c client.Client) threshold.Capturer { return captureCreator{c} }

// Trigger implements threshold.Capturer.
func (k captureCreator) Trigger(ctx context.Context, group string, t threshold.Target, c threshold.Crossing, at time.Time) error {
	ns, name := splitGroup(group)
	pcap := ThresholdCapture(t.Pod, &profilingv1alpha1.ProfilingConfigReference{Namespace: ns, Name: name},
		profilingv1alpha1.SourceMetricsServer, c.Resource, c.Container, c.Reason(), RequesterOperator, at)
	pcap.GenerateName, pcap.Name = "", ThresholdCaptureName(t.Pod, at)
	if err := k.c.Create(ctx, pcap); err != nil {
		return fmt.Errorf("create ProfileCapture of pod %s/%s for %s: %w", t.Pod.Namespace, t.Pod.Name, group, err)
	}
	return nil
}
