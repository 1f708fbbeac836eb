package nodethreshold

import (
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// maxGenerateName is the longest generateName whose generated name (5 random characters
// appended) is still a valid label value and DNS label (63).
const maxGenerateName = validation.DNS1123LabelMaxLength - 5

// maxReason is the longest spec.reason (the CRD's maxLength).
const maxReason = 256

// Requester names the agent of node in spec.requester.
func Requester(node string) string { return "kprof-agent/" + node }

// newCapture builds the ProfileCapture of a crossing of pod under the config ref at
// crossedAt (design §A): generateName <pod>-, labels profiling.io/pod (when the name is a
// valid label value) and profiling.io/node, spec with trigger Threshold and the crossing.
// Profile types and CPU duration are left to the config.
func newCapture(node string, pod *corev1.Pod, ref profilingv1alpha1.ProfilingConfigReference, c threshold.Crossing, crossedAt time.Time) *profilingv1alpha1.ProfileCapture {
	labels := map[string]string{}
	if len(validation.IsValidLabelValue(pod.Name)) == 0 {
		labels[profilingv1alpha1.LabelCapturePod] = pod.Name
	}
	if len(validation.IsValidLabelValue(node)) == 0 {
		labels[profilingv1alpha1.LabelCaptureNode] = node
	}
	return &profilingv1alpha1.ProfileCapture{
		TypeMeta: metav1.TypeMeta{APIVersion: profilingv1alpha1.GroupVersion.String(), Kind: "ProfileCapture"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace:    pod.Namespace,
			GenerateName: generateName(pod.Name),
			Labels:       labels,
		},
		Spec: profilingv1alpha1.ProfileCaptureSpec{
			Pod:             pod.Name,
			Reason:          truncate(c.Reason(), maxReason),
			ProfilingConfig: &ref,
			Requester:       truncate(Requester(node), maxReason),
			Trigger:         profilingv1alpha1.TriggerThreshold,
			Threshold: &profilingv1alpha1.ThresholdCrossing{
				Source:    profilingv1alpha1.SourceAgent,
				Resource:  c.Resource,
				Container: c.Container,
				CrossedAt: metav1.NewMicroTime(crossedAt),
			},
		},
	}
}

// generateName is "<pod>-", the pod name cut so that the generated name stays a DNS label
// (pod names are DNS subdomains: a cut that ends in '.' or '-' is trimmed).
func generateName(pod string) string {
	base := pod
	if len(base) > maxGenerateName-1 {
		base = strings.TrimRight(base[:maxGenerateName-1], ".-")
	}
	return base + "-"
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8Start(s[cut]) {
		cut-- // never split a multi-byte character (≥ in reasons)
	}
	return s[:cut] + "..."
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
