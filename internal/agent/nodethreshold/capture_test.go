package nodethreshold

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// Long pod names are cut so the generated name (5 more characters) is a DNS label, and
// a name that is no valid label value gets no profiling.io/pod label.
func TestCaptureNamesFitTheirLimits(t *testing.T) {
	cases := []struct {
		pod      string
		wantGen  string
		wantPodL bool
	}{
		{"shop-1", "shop-1-", true},
		{strings.Repeat("a", 63), strings.Repeat("a", 57) + "-", true},
		{strings.Repeat("a", 56) + ".b" + strings.Repeat("c", 100), strings.Repeat("a", 56) + "-", false},
		{strings.Repeat("a", 55) + "-.x" + strings.Repeat("c", 10), strings.Repeat("a", 55) + "-", false},
	}
	for _, tc := range cases {
		pod := runningPod(tc.pod, uidA)
		pc := newCapture("node-1", pod, profilingv1alpha1.ProfilingConfigReference{Name: "c"},
			threshold.Crossing{Resource: "cpu", Container: strings.Repeat("x", 300), Percent: 90, Threshold: 80, Basis: "request", PodContainers: 2}, t0)
		if pc.GenerateName != tc.wantGen {
			t.Errorf("pod %q: generateName %q, want %q", tc.pod, pc.GenerateName, tc.wantGen)
		}
		if errs := validation.IsDNS1123Label(pc.GenerateName + "abcde"); len(errs) != 0 {
			t.Errorf("pod %q: generated name %q invalid: %v", tc.pod, pc.GenerateName+"abcde", errs)
		}
		if _, ok := pc.Labels[profilingv1alpha1.LabelCapturePod]; ok != tc.wantPodL {
			t.Errorf("pod %q: profiling.io/pod label present %v, want %v", tc.pod, ok, tc.wantPodL)
		}
		if len(pc.Spec.Reason) > maxReason || !strings.HasSuffix(pc.Spec.Reason, "...") {
			t.Errorf("pod %q: reason of %d bytes %q, want it cut to %d", tc.pod, len(pc.Spec.Reason), pc.Spec.Reason, maxReason)
		}
	}
}
