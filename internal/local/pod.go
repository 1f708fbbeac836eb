package local

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

// Pod annotations that say where a pod serves pprof.
const (
	AnnotationPort    = "profiling.io/port"
	AnnotationPath    = "profiling.io/path"
	AnnotationService = "profiling.io/service"

	DefaultPodPort = 6060
	DefaultPodPath = "/debug/pprof"

	// KubeRequestTimeout bounds each request to the Kubernetes API.
	KubeRequestTimeout = 30 * time.Second
)

// ParsePodRef splits NAMESPACE/NAME.
func ParsePodRef(ref string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(ref, "/")
	if !ok || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("pod %q: want NAMESPACE/NAME", ref)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("pod %q: namespace %q: %s", ref, ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return types.NamespacedName{}, fmt.Errorf("pod %q: name %q: %s", ref, name, strings.Join(errs, "; "))
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// ResolvePod reads the pod through the Kubernetes API and returns the capture target
// that reaches its pprof endpoint directly on the pod IP.
func ResolvePod(ctx context.Context, c client.Reader, ref types.NamespacedName) (capture.Target, error) {
	ctx, cancel := context.WithTimeout(ctx, KubeRequestTimeout)
	defer cancel()
	var pod corev1.Pod
	if err := c.Get(ctx, ref, &pod); err != nil {
		if apierrors.IsNotFound(err) {
			return capture.Target{}, fmt.Errorf("pod %s not found", ref)
		}
		return capture.Target{}, fmt.Errorf("get pod %s: %w", ref, err)
	}
	return PodTarget(&pod)
}

// PodTarget derives the capture target of a running pod: pod IP, port from the
// profiling.io/port annotation (default 6060), path from profiling.io/path (default
// /debug/pprof), and metadata naming the pod.
func PodTarget(pod *corev1.Pod) (capture.Target, error) {
	ref := pod.Namespace + "/" + pod.Name
	if pod.Status.Phase != corev1.PodRunning {
		phase := pod.Status.Phase
		if phase == "" {
			phase = "not yet scheduled"
		}
		return capture.Target{}, fmt.Errorf("pod %s is %s, not Running: only a running pod serves profiles", ref, phase)
	}
	if pod.Status.PodIP == "" {
		return capture.Target{}, fmt.Errorf("pod %s has no pod IP yet: try again once it has one", ref)
	}
	port := DefaultPodPort
	if v, ok := pod.Annotations[AnnotationPort]; ok {
		p, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || p < 1 || p > 65535 {
			return capture.Target{}, fmt.Errorf("pod %s: annotation %s: want a port from 1 to 65535, got %q", ref, AnnotationPort, v)
		}
		port = p
	}
	path := DefaultPodPath
	if v, ok := pod.Annotations[AnnotationPath]; ok {
		p := strings.TrimSpace(v)
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#") || strings.Contains(p, "..") {
			return capture.Target{}, fmt.Errorf("pod %s: annotation %s: want an absolute path such as /debug/pprof, got %q", ref, AnnotationPath, v)
		}
		path = strings.TrimRight(p, "/")
	}
	u := url.URL{Scheme: "http", Host: net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)), Path: path}

	return capture.Target{
		ID:      string(pod.UID),
		BaseURL: u.String(),
		Meta: storage.Meta{
			Namespace: pod.Namespace,
			Pod:       pod.Name,
			Node:      pod.Spec.NodeName,
			Service:   podService(pod),
			Container: containerWithPort(pod, port),
			Target:    ref,
			Labels:    maps.Clone(pod.Labels),
		},
	}, nil
}

// podService is the profiling.io/service annotation, else the app.kubernetes.io/name
// or app label, else the pod name.
func podService(pod *corev1.Pod) string {
	if v := strings.TrimSpace(pod.Annotations[AnnotationService]); v != "" {
		return v
	}
	for _, k := range []string{"app.kubernetes.io/name", "app"} {
		if v := pod.Labels[k]; v != "" {
			return v
		}
	}
	return pod.Name
}

// containerWithPort names the container declaring port, or the only container.
func containerWithPort(pod *corev1.Pod, port int) string {
	for _, c := range pod.Spec.Containers {
		for _, p := range c.Ports {
			if int(p.ContainerPort) == port {
				return c.Name
			}
		}
	}
	if len(pod.Spec.Containers) == 1 {
		return pod.Spec.Containers[0].Name
	}
	return ""
}

// NewKubeClient returns a client for the cluster of kubeconfig (the file, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster config) and kubeContext (the
// current context when empty).
func NewKubeClient(kubeconfig, kubeContext string) (client.Client, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig (--kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster): %w", err)
	}
	cfg.Timeout = KubeRequestTimeout
	cfg.UserAgent = "kprof-capture"
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client for %s: %w", cfg.Host, err)
	}
	return c, nil
}
