package local

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/podtarget"
)

const (
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
// /debug/pprof), and metadata naming the pod. Unlike the operator, it does not require
// the profiling.io/enabled annotation: the user asked for this pod.
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
	t, err := podtarget.Build(pod)
	if err != nil {
		return capture.Target{}, fmt.Errorf("pod %s: %w", ref, err)
	}
	return t, nil
}

// NewKubeClient returns a client for the cluster of kubeconfig (the file, else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster config) and kubeContext (the
// current context when empty).
func NewKubeClient(kubeconfig, kubeContext string) (client.Client, error) {
	cfg, err := LoadKubeConfig(kubeconfig, kubeContext)
	if err != nil {
		return nil, err
	}
	cfg.Timeout = KubeRequestTimeout
	c, err := client.New(cfg, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		return nil, fmt.Errorf("create Kubernetes client for %s: %w", cfg.Host, err)
	}
	return c, nil
}

// LoadKubeConfig loads the REST config of kubeconfig (the file, else $KUBECONFIG, else
// ~/.kube/config, else the in-cluster config) and kubeContext (the current one when empty).
func LoadKubeConfig(kubeconfig, kubeContext string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules,
		&clientcmd.ConfigOverrides{CurrentContext: kubeContext}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig (--kubeconfig, else $KUBECONFIG, else ~/.kube/config, else in-cluster): %w", err)
	}
	cfg.UserAgent = "kprof-capture"
	return cfg, nil
}
