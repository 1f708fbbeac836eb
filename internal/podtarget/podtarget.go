// Package podtarget turns a pod into a capture target: where it serves pprof (pod IP,
// profiling.io/port and profiling.io/path annotations) and who it is (namespace, pod,
// node, service, container, labels). The operator and `kprof capture pod` share it.
package podtarget

import (
	"fmt"
	"maps"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/portforward"
	"github.com/kprof/kprof/internal/serviceid"
	"github.com/kprof/kprof/internal/storage"
)

// SkipReason explains why a selected pod is not a target; empty means it is one.
type SkipReason string

// Reasons a selected pod is not captured.
const (
	SkipNotAnnotated SkipReason = "NotAnnotated"
	SkipNotRunning   SkipReason = "NotRunning"
	SkipNotReady     SkipReason = "NotReady"
	SkipNoIP         SkipReason = "NoPodIP"
	SkipDeleting     SkipReason = "Terminating"
	SkipBadPort      SkipReason = "InvalidPortAnnotation"
	SkipBadPath      SkipReason = "InvalidPathAnnotation"
)

// Select decides whether the operator captures pod (annotated profiling.io/enabled:
// "true", not terminating, Running, Ready, with a pod IP and valid annotations) and
// builds its target. The caller has already matched namespace and label selector.
func Select(pod *corev1.Pod) (capture.Target, SkipReason, error) {
	if pod.Annotations[profilingv1alpha1.AnnotationEnabled] != "true" {
		return capture.Target{}, SkipNotAnnotated, nil
	}
	if pod.DeletionTimestamp != nil {
		return capture.Target{}, SkipDeleting, nil
	}
	if pod.Status.Phase != corev1.PodRunning {
		return capture.Target{}, SkipNotRunning, nil
	}
	if !podReady(pod) {
		return capture.Target{}, SkipNotReady, nil
	}
	if pod.Status.PodIP == "" {
		return capture.Target{}, SkipNoIP, nil
	}
	return build(pod)
}

// Build returns the target of pod without checking that the operator would select
// it: for an explicit one-shot capture. The pod must have a pod IP.
func Build(pod *corev1.Pod) (capture.Target, error) {
	if pod.Status.PodIP == "" {
		return capture.Target{}, fmt.Errorf("pod %s/%s has no pod IP", pod.Namespace, pod.Name)
	}
	t, _, err := build(pod)
	return t, err
}

func build(pod *corev1.Pod) (capture.Target, SkipReason, error) {
	port, err := podPort(pod)
	if err != nil {
		return capture.Target{}, SkipBadPort, err
	}
	path, err := podPath(pod)
	if err != nil {
		return capture.Target{}, SkipBadPath, err
	}
	base := url.URL{Scheme: "http", Host: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)), Path: path}
	return capture.Target{
		ID:      string(pod.UID),
		BaseURL: base.String(),
		Meta: storage.Meta{
			Namespace: pod.Namespace,
			Pod:       pod.Name,
			Node:      pod.Spec.NodeName,
			Service:   Service(pod),
			Container: podContainer(pod),
			Target:    pod.Namespace + "/" + pod.Name,
			Labels:    copyLabels(pod.Labels),
		},
	}, "", nil
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podPort(pod *corev1.Pod) (int, error) {
	v, ok := pod.Annotations[profilingv1alpha1.AnnotationPort]
	if !ok || v == "" {
		return profilingv1alpha1.DefaultPprofPort, nil
	}
	port, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || port < 1 || port > 65535 {
		return 0, fmt.Errorf("annotation %s=%q: must be a port number 1-65535", profilingv1alpha1.AnnotationPort, v)
	}
	return port, nil
}

func podPath(pod *corev1.Pod) (string, error) {
	v, ok := pod.Annotations[profilingv1alpha1.AnnotationPath]
	if !ok || v == "" {
		return profilingv1alpha1.DefaultPprofPath, nil
	}
	u, err := url.Parse(v)
	if err != nil || !strings.HasPrefix(v, "/") || u.RawQuery != "" || u.Fragment != "" || u.Host != "" ||
		strings.Contains(v, "..") || len(v) > 256 {
		return "", fmt.Errorf("annotation %s=%q: must be an absolute URL path such as /debug/pprof", profilingv1alpha1.AnnotationPath, v)
	}
	return strings.TrimRight(v, "/"), nil
}

// Service names the service a pod belongs to: serviceid.Name of the pod and the
// container serving pprof (the OpenTelemetry annotation, profiling.io/service,
// app.kubernetes.io/name, the owning workload, the pod name).
func Service(pod *corev1.Pod) string {
	return serviceid.Name(pod, podContainer(pod))
}

// podContainer names the container serving pprof: the one exposing the pprof port,
// else the only container.
func podContainer(pod *corev1.Pod) string {
	port, err := podPort(pod)
	if err == nil {
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if int(p.ContainerPort) == port {
					return c.Name
				}
			}
		}
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

// maxLabels bounds the labels copied into a profile's metadata.
const maxLabels = 16

func copyLabels(in map[string]string) map[string]string {
	if len(in) == 0 {
		return nil
	}
	keys := slices.Sorted(maps.Keys(in))
	out := make(map[string]string, min(len(keys), maxLabels))
	for _, k := range keys[:min(len(keys), maxLabels)] {
		out[k] = in[k]
	}
	return out
}

// PortForwardURL rewrites a target URL so its host names the pod for the port-forward
// transport (portforward.Host), keeping port and path.
func PortForwardURL(namespace, name, base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return base
	}
	u.Host = net.JoinHostPort(portforward.Host(namespace, name), u.Port())
	return u.String()
}
