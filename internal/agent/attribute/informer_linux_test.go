//go:build linux

package attribute

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kprof/kprof/internal/testenv"
)

const testNamespace = "kprof-attribute"

// eventually polls cond until it holds or a generous deadline passes: the informer sees
// API changes asynchronously. The deadline bounds a hang; it asserts nothing about speed.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func createPod(t *testing.T, cs kubernetes.Interface, name, node string) *corev1.Pod {
	t.Helper()
	pod, err := cs.CoreV1().Pods(testNamespace).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		Spec: corev1.PodSpec{
			NodeName:   node,
			Containers: []corev1.Container{{Name: "app", Image: "example.com/app:1"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s on %s: %v", name, node, err)
	}
	return pod
}

// setContainerID posts the status a kubelet would once the "app" container runs.
func setContainerID(t *testing.T, cs kubernetes.Interface, pod *corev1.Pod, containerID string) *corev1.Pod {
	t.Helper()
	pod = pod.DeepCopy()
	pod.Status.Phase = corev1.PodRunning
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name:        "app",
		Image:       "example.com/app:1",
		ImageID:     "example.com/app@sha256:" + randomContainerID(t),
		ContainerID: containerID,
		Ready:       true,
		State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}},
	}}
	pod, err := cs.CoreV1().Pods(pod.Namespace).UpdateStatus(context.Background(), pod, metav1.UpdateOptions{})
	if err != nil {
		t.Fatalf("update status of pod %s: %v", pod.Name, err)
	}
	return pod
}

func deletePod(t *testing.T, cs kubernetes.Interface, name string) {
	t.Helper()
	// Grace period 0: no kubelet will confirm the deletion.
	err := cs.CoreV1().Pods(testNamespace).Delete(context.Background(), name, *metav1.NewDeleteOptions(0))
	if err != nil {
		t.Fatalf("delete pod %s: %v", name, err)
	}
}

func TestLabelsFromPodInformer(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	cs, err := kubernetes.NewForConfig(env.Config)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// A pod on another node, there before the informer lists...
	setContainerID(t, cs, createPod(t, cs, "elsewhere-before", "node-2"), "containerd://"+randomContainerID(t))

	a := newAttributor(t, Config{
		NodeName: "node-1",
		Client:   cs,
		Logger:   slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	startCtx, cancel := context.WithCancel(ctx)
	if err := a.Start(startCtx); err != nil {
		t.Fatal(err)
	}
	cancel() // Start must not keep its ctx: the informer runs on until Shutdown.
	t.Cleanup(func() {
		for range 2 { // idempotent
			if err := a.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		}
	})
	if err := a.Start(ctx); err == nil {
		t.Error("second Start succeeded, want an error")
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if err := a.WaitForCacheSync(syncCtx); err != nil {
		t.Fatal(err)
	}
	// ...and one created while it watches.
	setContainerID(t, cs, createPod(t, cs, "elsewhere-after", "node-2"), "containerd://"+randomContainerID(t))

	exe := sleepExe(t)
	for i, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			name := "app-" + strconv.Itoa(i)
			pod := createPod(t, cs, name, "node-1")
			containerID := randomContainerID(t)
			pid := startInCgroup(t, l, string(pod.UID), containerID)
			base := map[string]string{"pid": strconv.Itoa(int(pid)), "comm": "sleep", "exe": exe, "container_id": containerID}
			withPod := func(container string) map[string]string {
				m := maps.Clone(base)
				m["pod"], m["namespace"], m["pod_uid"] = name, testNamespace, string(pod.UID)
				// The pod's service identity: no annotation, label or owner, so the
				// pod's name; the version is the image tag (example.com/app:1).
				m["service"], m["service_namespace"], m["service_version"] = name, testNamespace, "1"
				m["service_instance_id"] = testNamespace + "." + name
				if container != "" {
					m["container"] = container
					m["service_instance_id"] += "." + container
				}
				return m
			}

			t.Run("before the container status is posted the pod is found by the cgroup's pod UID", func(t *testing.T) {
				want := withPod("")
				eventually(t, "the informer sees pod "+name, func() bool { return maps.Equal(a.Labels(pid), want) })
			})

			t.Run("the container ID in the pod status gives pod, namespace and container", func(t *testing.T) {
				setContainerID(t, cs, pod, "containerd://"+containerID)
				want := withPod("app")
				eventually(t, "the informer sees the status of pod "+name, func() bool { return maps.Equal(a.Labels(pid), want) })
				p, err := a.Process(pid)
				if err != nil || p.Runtime != RuntimeContainerd {
					t.Errorf("Process(%d) = %+v, %v; want runtime %q (from the path or the status)", pid, p, err, RuntimeContainerd)
				}
			})

			t.Run("only this node's pods are in the informer", func(t *testing.T) {
				// The node-2 pods were written before this pod's status, and a watch
				// delivers in order: had the selector let them through, they would be here.
				keys := a.informer.GetStore().ListKeys()
				if want := []string{testNamespace + "/" + name}; !slices.Equal(keys, want) {
					t.Errorf("informer store = %v, want %v", keys, want)
				}
			})

			t.Run("once the pod is deleted the labels drop the pod", func(t *testing.T) {
				deletePod(t, cs, name)
				eventually(t, "the informer sees pod "+name+" deleted", func() bool { return maps.Equal(a.Labels(pid), base) })
			})
		})
	}
}
