package local

import (
	"context"
	"reflect"
	"strings"
	"testing"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

func testPod(name string, mutate func(p *corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: name, UID: types.UID("uid-" + name),
			Labels: map[string]string{"app": "checkout"},
		},
		Spec: corev1.PodSpec{
			NodeName: "node-1",
			Containers: []corev1.Container{
				{Name: "sidecar"},
				{Name: "app", Ports: []corev1.ContainerPort{{ContainerPort: 6060}}},
			},
		},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.1.2.3"},
	}
	if mutate != nil {
		mutate(p)
	}
	return p
}

func TestResolvePod(t *testing.T) {
	pods := []*corev1.Pod{
		testPod("plain", nil),
		testPod("annotated", func(p *corev1.Pod) {
			p.Annotations = map[string]string{profilingv1alpha1.AnnotationPort: "8080", profilingv1alpha1.AnnotationPath: "/internal/pprof/", profilingv1alpha1.AnnotationService: "checkout-api"}
			p.Spec.Containers = []corev1.Container{{Name: "only"}}
		}),
		testPod("ipv6", func(p *corev1.Pod) { p.Status.PodIP = "fd00::7" }),
		testPod("pending", func(p *corev1.Pod) { p.Status = corev1.PodStatus{Phase: corev1.PodPending} }),
		testPod("no-ip", func(p *corev1.Pod) { p.Status.PodIP = "" }),
		testPod("finished", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded }),
		testPod("bad-port", func(p *corev1.Pod) { p.Annotations = map[string]string{profilingv1alpha1.AnnotationPort: "http"} }),
		testPod("bad-path", func(p *corev1.Pod) {
			p.Annotations = map[string]string{profilingv1alpha1.AnnotationPath: "debug/pprof"}
		}),
	}
	b := fake.NewClientBuilder()
	for _, p := range pods {
		b = b.WithObjects(p)
	}
	c := b.Build()

	for _, tc := range []struct {
		name    string
		pod     string
		want    capture.Target
		wantErr string
	}{
		{name: "a running pod is reached on its IP at the default port and path, named after itself without a service label", pod: "plain", want: capture.Target{
			ID: "uid-plain", BaseURL: "http://10.1.2.3:6060/debug/pprof",
			Meta: storage.Meta{Namespace: "shop", Pod: "plain", Node: "node-1", Service: "plain", Container: "app",
				Target: "shop/plain", Labels: map[string]string{"app": "checkout"}},
		}},
		{name: "the annotations set port, path and service", pod: "annotated", want: capture.Target{
			ID: "uid-annotated", BaseURL: "http://10.1.2.3:8080/internal/pprof",
			Meta: storage.Meta{Namespace: "shop", Pod: "annotated", Node: "node-1", Service: "checkout-api", Container: "only",
				Target: "shop/annotated", Labels: map[string]string{"app": "checkout"}},
		}},
		{name: "an IPv6 pod IP is bracketed", pod: "ipv6", want: capture.Target{
			ID: "uid-ipv6", BaseURL: "http://[fd00::7]:6060/debug/pprof",
			Meta: storage.Meta{Namespace: "shop", Pod: "ipv6", Node: "node-1", Service: "ipv6", Container: "app",
				Target: "shop/ipv6", Labels: map[string]string{"app": "checkout"}},
		}},
		{name: "a pending pod is refused", pod: "pending", wantErr: "pod shop/pending is Pending, not Running"},
		{name: "a finished pod is refused", pod: "finished", wantErr: "pod shop/finished is Succeeded, not Running"},
		{name: "a pod without an IP is refused", pod: "no-ip", wantErr: "pod shop/no-ip has no pod IP yet"},
		{name: "a port annotation that is not a number is named", pod: "bad-port", wantErr: `annotation profiling.io/port="http": must be a port number 1-65535`},
		{name: "a relative path annotation is named", pod: "bad-path", wantErr: `annotation profiling.io/path="debug/pprof": must be an absolute URL path`},
		{name: "a missing pod says so", pod: "gone", wantErr: "pod shop/gone not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolvePod(context.Background(), c, types.NamespacedName{Namespace: "shop", Name: tc.pod})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ResolvePod(%s) = %+v, %v; want an error containing %q", tc.pod, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolvePod(%s): %v", tc.pod, err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ResolvePod(%s) = %+v\nwant %+v", tc.pod, got, tc.want)
			}
		})
	}
}

func TestParsePodRef(t *testing.T) {
	for _, tc := range []struct {
		name, ref, wantErr string
	}{
		{"namespace and name are split", "shop/checkout-7d9f", ""},
		{"a name without a namespace is refused", "checkout-7d9f", "want NAMESPACE/NAME"},
		{"an extra slash is refused", "shop/checkout/x", "want NAMESPACE/NAME"},
		{"an invalid namespace is named", "Shop/checkout", `namespace "Shop"`},
		{"an empty name is named", "shop/", `name ""`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePodRef(tc.ref)
			if tc.wantErr == "" {
				if err != nil || got.String() != tc.ref {
					t.Fatalf("ParsePodRef(%q) = %v, %v; want %s", tc.ref, got, err, tc.ref)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("ParsePodRef(%q) = %v, %v; want an error containing %q", tc.ref, got, err, tc.wantErr)
			}
		})
	}
}
