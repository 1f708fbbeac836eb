package testenv

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// CreatePods creates many pods (and their namespaces) with up to workers requests in flight and no
// client-side rate limit, and returns once the API server accepted them all, without waiting for
// kwok: see WaitPodsRunning. It is for scale tests; CreatePod is the one-pod form that waits.
func (c *Cluster) CreatePods(t testing.TB, specs []PodSpec, workers int) {
	t.Helper()
	if workers <= 0 {
		workers = 16
	}
	pods := make([]*corev1.Pod, 0, len(specs))
	namespaces := map[string]bool{}
	for _, s := range specs {
		pod, err := c.buildPod(s)
		if err != nil {
			t.Fatalf("testenv: pod %s/%s: %v", s.Namespace, s.Name, err)
		}
		pods = append(pods, pod)
		namespaces[pod.Namespace] = true
	}
	cfg := rest.CopyConfig(c.Config)
	cfg.QPS = -1 // the worker pool bounds the load; the API server's priority and fairness does the rest
	cl, err := client.New(cfg, client.Options{Scheme: c.Client.Scheme()})
	if err != nil {
		t.Fatalf("testenv: bulk client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	for ns := range namespaces {
		err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("testenv: create namespace %s: %v", ns, err)
		}
	}

	work := make(chan *corev1.Pod)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	for range min(workers, len(pods)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for pod := range work {
				if err := cl.Create(ctx, pod); err != nil && !apierrors.IsAlreadyExists(err) {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
						cancel()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, pod := range pods {
		if ctx.Err() != nil {
			break
		}
		work <- pod
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("testenv: %v", firstErr)
	}
}

// WaitPodsRunning waits until at least want pods of namespace are Running and Ready with a pod
// IP (as CreatePod waits for one), listing them every two seconds, and fails t after timeout.
func (c *Cluster) WaitPodsRunning(t testing.TB, namespace string, want int, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var last string
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		if exited, err := c.kwok.exited(); exited {
			return false, fmt.Errorf("kwok exited: %v", err)
		}
		var pods corev1.PodList
		if err := c.Client.List(ctx, &pods, client.InNamespace(namespace)); err != nil {
			last = err.Error()
			return false, nil
		}
		running := 0
		for i := range pods.Items {
			p := &pods.Items[i]
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && podReady(p) {
				running++
			}
		}
		last = fmt.Sprintf("%d/%d pods Running+Ready of %d", running, want, len(pods.Items))
		return running >= want, nil
	})
	if err != nil {
		t.Fatalf("testenv: wait for pods of %s (%s): %v", namespace, last, err)
	}
}
