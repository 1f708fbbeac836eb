package controller

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
	"github.com/kprof/kprof/internal/storage"
)

// skipReason explains why an annotated pod is not a target; empty means it is one.
type skipReason string

const (
	skipNotAnnotated skipReason = "NotAnnotated"
	skipNotRunning   skipReason = "NotRunning"
	skipNotReady     skipReason = "NotReady"
	skipNoIP         skipReason = "NoPodIP"
	skipDeleting     skipReason = "Terminating"
	skipBadPort      skipReason = "InvalidPortAnnotation"
	skipBadPath      skipReason = "InvalidPathAnnotation"
)

// podTarget decides whether pod is a capture target and builds it. The caller has
// already matched namespace and label selector.
func podTarget(pod *corev1.Pod) (capture.Target, skipReason, error) {
	if pod.Annotations[profilingv1alpha1.AnnotationEnabled] != "true" {
		return capture.Target{}, skipNotAnnotated, nil
	}
	if pod.DeletionTimestamp != nil {
		return capture.Target{}, skipDeleting, nil
	}
	if pod.Status.Phase != corev1.PodRunning {
		return capture.Target{}, skipNotRunning, nil
	}
	if !podReady(pod) {
		return capture.Target{}, skipNotReady, nil
	}
	if pod.Status.PodIP == "" {
		return capture.Target{}, skipNoIP, nil
	}
	port, err := podPort(pod)
	if err != nil {
		return capture.Target{}, skipBadPort, err
	}
	path, err := podPath(pod)
	if err != nil {
		return capture.Target{}, skipBadPath, err
	}
	base := url.URL{Scheme: "http", Host: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)), Path: path}
	return capture.Target{
		ID:      string(pod.UID),
		BaseURL: base.String(),
		Meta: storage.Meta{
			Namespace: pod.Namespace,
			Pod:       pod.Name,
			Node:      pod.Spec.NodeName,
			Service:   podService(pod),
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

// podService names the service a pod belongs to: the profiling.io/service annotation,
// else the app.kubernetes.io/name label, else the owning workload.
func podService(pod *corev1.Pod) string {
	if s := pod.Annotations[profilingv1alpha1.AnnotationService]; s != "" {
		return s
	}
	if s := pod.Labels["app.kubernetes.io/name"]; s != "" {
		return s
	}
	for _, ref := range pod.OwnerReferences {
		if ref.Controller == nil || !*ref.Controller {
			continue
		}
		switch ref.Kind {
		case "ReplicaSet":
			// A Deployment's ReplicaSet is named <deployment>-<pod-template-hash>.
			if h := pod.Labels["pod-template-hash"]; h != "" && strings.HasSuffix(ref.Name, "-"+h) {
				return strings.TrimSuffix(ref.Name, "-"+h)
			}
			return ref.Name
		case "StatefulSet", "DaemonSet", "Job", "ReplicationController":
			return ref.Name
		}
	}
	return pod.Name
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
