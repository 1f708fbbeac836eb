package attribute

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestAttributorLookupPod(t *testing.T) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "web", UID: uid},
		Spec:       corev1.PodSpec{NodeName: "node-1"},
		Status: corev1.PodStatus{
			ContainerStatuses: []corev1.ContainerStatus{{Name: "app", ContainerID: "containerd://" + cid}},
		},
	}
	a := newAttributor(t, Config{Client: fake.NewClientset(pod), NodeName: "node-1"})
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Shutdown(context.Background()) })
	if err := a.WaitForCacheSync(t.Context()); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                       string
		podUID, containerID        string
		wantName, wantNS, wantCont string
		wantOK                     bool
	}{
		{"a container by ID gives its pod and name", "", cid, "web", "ns", "app", true},
		{"a pod UID alone gives the pod without container", uid, "", "web", "ns", "", true},
		{"an unknown container of a known pod gives the pod", uid, nodeID, "web", "ns", "", true},
		{"an unknown pod and container", "00000000-0000-0000-0000-000000000000", nodeID, "", "", "", false},
		{"nothing to look up", "", "", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name, ns, cont, ok := a.LookupPod(tt.podUID, tt.containerID)
			if name != tt.wantName || ns != tt.wantNS || cont != tt.wantCont || ok != tt.wantOK {
				t.Errorf("LookupPod(%q, %q) = %q, %q, %q, %v; want %q, %q, %q, %v",
					tt.podUID, tt.containerID, name, ns, cont, ok, tt.wantName, tt.wantNS, tt.wantCont, tt.wantOK)
			}
		})
	}
	t.Run("without a cluster nothing is known", func(t *testing.T) {
		if _, _, _, ok := newAttributor(t, Config{}).LookupPod(uid, cid); ok {
			t.Error("LookupPod without a cluster = ok, want not ok")
		}
	})
}
