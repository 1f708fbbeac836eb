package podtarget

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func runningPod(mod func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "cart-7d9f-abcde", UID: "uid-1",
			Annotations: map[string]string{"profiling.io/enabled": "true"},
			Labels:      map[string]string{"pod-template-hash": "7d9f"},
		},
		Spec: corev1.PodSpec{NodeName: "n1", Containers: []corev1.Container{{Name: "cart"}}},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.0.0.7",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
	if mod != nil {
		mod(p)
	}
	return p
}

func controllerRef(kind, name string) []metav1.OwnerReference {
	t := true
	return []metav1.OwnerReference{{Kind: kind, Name: name, Controller: &t}}
}

func TestPodTarget(t *testing.T) {
	cases := []struct {
		name    string
		pod     *corev1.Pod
		skip    SkipReason
		url     string
		service string
		errPart string
	}{
		{name: "an annotated running ready pod is captured on the default port and path", pod: runningPod(nil),
			url: "http://10.0.0.7:6060/debug/pprof", service: "cart-7d9f-abcde"},
		{name: "the port and path annotations are honoured", pod: runningPod(func(p *corev1.Pod) {
			p.Annotations["profiling.io/port"] = "9090"
			p.Annotations["profiling.io/path"] = "/internal/pprof/"
		}), url: "http://10.0.0.7:9090/internal/pprof"},
		{name: "an IPv6 pod IP is bracketed", pod: runningPod(func(p *corev1.Pod) { p.Status.PodIP = "fd00::7" }),
			url: "http://[fd00::7]:6060/debug/pprof"},
		{name: "a pod without the annotation is not a target", pod: runningPod(func(p *corev1.Pod) { delete(p.Annotations, "profiling.io/enabled") }), skip: SkipNotAnnotated},
		{name: "an annotation other than true is not a target", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/enabled"] = "yes" }), skip: SkipNotAnnotated},
		{name: "a pending pod is skipped", pod: runningPod(func(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }), skip: SkipNotRunning},
		{name: "an unready pod is skipped", pod: runningPod(func(p *corev1.Pod) { p.Status.Conditions[0].Status = corev1.ConditionFalse }), skip: SkipNotReady},
		{name: "a pod without an IP is skipped", pod: runningPod(func(p *corev1.Pod) { p.Status.PodIP = "" }), skip: SkipNoIP},
		{name: "a terminating pod is skipped", pod: runningPod(func(p *corev1.Pod) { now := metav1.Now(); p.DeletionTimestamp = &now }), skip: SkipDeleting},
		{name: "a port that is not a number is an error naming the annotation", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/port"] = "http" }),
			skip: SkipBadPort, errPart: "profiling.io/port"},
		{name: "a port out of range is an error", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/port"] = "70000" }), skip: SkipBadPort, errPart: "1-65535"},
		{name: "a path that is a URL is refused", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/path"] = "http://evil/x" }), skip: SkipBadPath, errPart: "profiling.io/path"},
		{name: "a path with traversal is refused", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/path"] = "/a/../b" }), skip: SkipBadPath, errPart: "profiling.io/path"},
		{name: "a path with a query is refused", pod: runningPod(func(p *corev1.Pod) { p.Annotations["profiling.io/path"] = "/debug/pprof?x=1" }), skip: SkipBadPath, errPart: "profiling.io/path"},
		{name: "the service annotation wins", pod: runningPod(func(p *corev1.Pod) {
			p.Annotations["profiling.io/service"] = "checkout"
			p.Labels["app.kubernetes.io/name"] = "cart"
		}), url: "http://10.0.0.7:6060/debug/pprof", service: "checkout"},
		{name: "the app.kubernetes.io/name label comes next", pod: runningPod(func(p *corev1.Pod) { p.Labels["app.kubernetes.io/name"] = "cart" }), service: "cart"},
		{name: "a Deployment's pod is named after the Deployment", pod: runningPod(func(p *corev1.Pod) { p.OwnerReferences = controllerRef("ReplicaSet", "cart-7d9f") }), service: "cart"},
		{name: "a StatefulSet's pod is named after the StatefulSet", pod: runningPod(func(p *corev1.Pod) { p.OwnerReferences = controllerRef("StatefulSet", "db") }), service: "db"},
		{name: "a DaemonSet's pod is named after the DaemonSet", pod: runningPod(func(p *corev1.Pod) { p.OwnerReferences = controllerRef("DaemonSet", "agent") }), service: "agent"},
		{name: "a Job's pod is named after the Job", pod: runningPod(func(p *corev1.Pod) { p.OwnerReferences = controllerRef("Job", "backup-123") }), service: "backup-123"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, skip, err := Select(tc.pod)
			if skip != tc.skip {
				t.Fatalf("skip = %q, want %q (err %v)", skip, tc.skip, err)
			}
			if tc.errPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errPart) {
					t.Fatalf("err = %v, want it to mention %q", err, tc.errPart)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.skip != "" {
				return
			}
			if tc.url != "" && got.BaseURL != tc.url {
				t.Errorf("BaseURL = %q, want %q", got.BaseURL, tc.url)
			}
			if tc.service != "" && got.Meta.Service != tc.service {
				t.Errorf("service = %q, want %q", got.Meta.Service, tc.service)
			}
			if got.ID != "uid-1" || got.Meta.Namespace != "shop" || got.Meta.Node != "n1" || got.Meta.Container != "cart" {
				t.Errorf("meta = %+v (id %q)", got.Meta, got.ID)
			}
		})
	}
}

func TestCopyLabelsKeepsABoundedDeterministicSubset(t *testing.T) {
	in := map[string]string{}
	for i := 0; i < 40; i++ {
		in[string(rune('a'+i%26))+strings.Repeat("x", i/26)] = "v"
	}
	a, b := copyLabels(in), copyLabels(in)
	if len(a) != maxLabels {
		t.Fatalf("kept %d labels, want %d", len(a), maxLabels)
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			t.Fatalf("two copies differ: %v vs %v", a, b)
		}
	}
}
