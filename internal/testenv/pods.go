package testenv

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ContainerSpec is one container of a PodSpec. Quantities are strings ("500m", "128Mi"); ""
// leaves that request or limit unset.
type ContainerSpec struct {
	Name                      string // default "main"
	Port                      int    // containerPort (TCP), 0 = none
	CPURequest, MemoryRequest string
	CPULimit, MemoryLimit     string
}

// PodSpec is a pod for kwok to run.
type PodSpec struct {
	Namespace, Name     string
	Labels, Annotations map[string]string
	Node                string          // default the first node
	Containers          []ContainerSpec // default one container "main"
}

// podImage is the image of every container: kwok runs nothing, so it is never pulled.
const podImage = "kprof.invalid/testenv/fake:latest"

// CreatePod creates the pod (and its namespace if needed), bound to its node, and waits until
// kwok made it Running and Ready with a pod IP from PodCIDR; it returns the pod as it is then.
// Its metrics appear in metrics.k8s.io about two MetricsResolution periods later.
func (c *Cluster) CreatePod(t testing.TB, s PodSpec) *corev1.Pod {
	t.Helper()
	pod, err := c.buildPod(s)
	if err != nil {
		t.Fatalf("testenv: pod %s/%s: %v", s.Namespace, s.Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: pod.Namespace}}
	if err := c.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testenv: create namespace %s: %v", pod.Namespace, err)
	}
	if err := c.Client.Create(ctx, pod); err != nil {
		t.Fatalf("testenv: create pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	got, err := c.waitPodRunning(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := c.primeUsage(ctx, got.Spec.NodeName); err != nil {
		t.Logf("testenv: prime kwok usage counters on %s (metrics come one resolution later): %v", got.Spec.NodeName, err)
	}
	return got
}

// primeUsage reads the node's /metrics/resource from kwok once. kwok starts a container's
// cumulative CPU counter at the first read, and metrics-server drops a zero counter and then needs
// two more scrapes for a rate: without this a new pod's metrics appear after three resolutions
// (30-40 s at 10 s), with it after two.
func (c *Cluster) primeUsage(ctx context.Context, node string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics/nodes/%s/metrics/resource", c.kwokPort, node)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func (c *Cluster) buildPod(s PodSpec) (*corev1.Pod, error) {
	if s.Namespace == "" || s.Name == "" {
		return nil, fmt.Errorf("Namespace and Name are required")
	}
	node := s.Node
	if node == "" {
		node = c.Nodes[0]
	}
	specs := s.Containers
	if len(specs) == 0 {
		specs = []ContainerSpec{{}}
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: s.Namespace, Name: s.Name, Labels: s.Labels, Annotations: s.Annotations,
		},
		Spec: corev1.PodSpec{NodeName: node},
	}
	for _, cs := range specs {
		ctr := corev1.Container{Name: cs.Name, Image: podImage}
		if ctr.Name == "" {
			ctr.Name = "main"
		}
		if cs.Port != 0 {
			ctr.Ports = []corev1.ContainerPort{{ContainerPort: int32(cs.Port), Protocol: corev1.ProtocolTCP}}
		}
		for _, q := range []struct {
			list  *corev1.ResourceList
			name  corev1.ResourceName
			value string
			field string
		}{
			{&ctr.Resources.Requests, corev1.ResourceCPU, cs.CPURequest, "CPURequest"},
			{&ctr.Resources.Requests, corev1.ResourceMemory, cs.MemoryRequest, "MemoryRequest"},
			{&ctr.Resources.Limits, corev1.ResourceCPU, cs.CPULimit, "CPULimit"},
			{&ctr.Resources.Limits, corev1.ResourceMemory, cs.MemoryLimit, "MemoryLimit"},
		} {
			if q.value == "" {
				continue
			}
			v, err := resource.ParseQuantity(q.value)
			if err != nil {
				return nil, fmt.Errorf("container %s %s %q: %w", ctr.Name, q.field, q.value, err)
			}
			if *q.list == nil {
				*q.list = corev1.ResourceList{}
			}
			(*q.list)[q.name] = v
		}
		pod.Spec.Containers = append(pod.Spec.Containers, ctr)
	}
	return pod, nil
}

func (c *Cluster) waitPodRunning(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	pod := &corev1.Pod{}
	err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exited, err := c.kwok.exited(); exited {
			return false, fmt.Errorf("kwok exited: %v", err)
		}
		if err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
			return false, nil
		}
		return pod.Status.Phase == corev1.PodRunning && pod.Status.PodIP != "" && podReady(pod), nil
	})
	if err != nil {
		return nil, fmt.Errorf("wait for pod %s/%s Running+Ready (phase %q, IP %q): %w",
			ns, name, pod.Status.Phase, pod.Status.PodIP, err)
	}
	return pod, nil
}

func podReady(p *corev1.Pod) bool {
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// SetUsage sets the CPU and memory usage kwok reports for the pod, through its
// UsageCPUAnnotation and UsageMemoryAnnotation: each container of the pod reports this usage
// (a pod with two containers uses twice as much). "" leaves that resource as it is (unset: 1m,
// 1Mi). metrics-server sees a change within one or two MetricsResolution periods.
func (c *Cluster) SetUsage(t testing.TB, ns, name, cpu, memory string) {
	t.Helper()
	annotations := map[string]string{}
	for key, v := range map[string]string{UsageCPUAnnotation: cpu, UsageMemoryAnnotation: memory} {
		if v == "" {
			continue
		}
		if _, err := resource.ParseQuantity(v); err != nil {
			t.Fatalf("testenv: SetUsage %s/%s %s=%q: %v", ns, name, key, v, err)
		}
		annotations[key] = v
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": annotations}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Client.Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		t.Fatalf("testenv: SetUsage %s/%s: %v", ns, name, err)
	}
}

// PodMetrics reads the pod's metrics through kube-apiserver's aggregated metrics.k8s.io API,
// as the operator does in production.
func (c *Cluster) PodMetrics(ctx context.Context, ns, name string) (*metricsv1beta1.PodMetrics, error) {
	return c.metrics.MetricsV1beta1().PodMetricses(ns).Get(ctx, name, metav1.GetOptions{})
}
