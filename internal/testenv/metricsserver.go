package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

const (
	metricsServerNamespace = "kube-system"
	metricsServerName      = "metrics-server"
	metricsAPIServiceName  = "v1beta1.metrics.k8s.io"
)

// newMetricsServer returns the metrics-server process for this cluster, serving on
// 127.0.0.1:port with a self-signed certificate in dir and talking to kube-apiserver as the
// kubeconfig's user.
func newMetricsServer(dir, kubeconfig string, port int, resolution time.Duration) *process {
	certDir := filepath.Join(dir, "metrics-server-certs")
	return &process{
		name: "metrics-server",
		path: toolPath("metrics-server"),
		args: []string{
			"--secure-port=" + strconv.Itoa(port),
			"--bind-address=127.0.0.1",
			"--cert-dir=" + certDir,
			"--kubeconfig=" + kubeconfig,
			"--authentication-kubeconfig=" + kubeconfig,
			"--authorization-kubeconfig=" + kubeconfig,
			"--kubelet-insecure-tls",
			"--kubelet-preferred-address-types=InternalIP",
			"--kubelet-use-node-status-port",
			"--metric-resolution=" + resolution.String(),
			// Must be below the resolution (default 10s, equal to the minimum resolution).
			"--kubelet-request-timeout=" + min(resolution/2, 10*time.Second).String(),
		},
		logPath: filepath.Join(dir, "metrics-server.log"),
	}
}

// registerMetricsAPI makes kube-apiserver's aggregator send metrics.k8s.io to 127.0.0.1:port:
// the APIService points at an ExternalName Service "127.0.0.1", which the aggregator's default
// (cluster) routing resolves to https://127.0.0.1:<APIService port> (as kwokctl does).
// --enable-aggregator-routing with a selectorless Service and a hand-made EndpointSlice cannot
// work here: EndpointSlice validation rejects loopback addresses, and endpoint routing does not
// accept ExternalName Services.
func registerMetricsAPI(ctx context.Context, c client.Client, port int) error {
	objs := []client.Object{
		&corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Namespace: metricsServerNamespace, Name: metricsServerName},
			Spec: corev1.ServiceSpec{
				Type:         corev1.ServiceTypeExternalName,
				ExternalName: "127.0.0.1",
				Ports:        []corev1.ServicePort{{Name: "https", Port: int32(port), Protocol: corev1.ProtocolTCP}},
			},
		},
		apiService(port),
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			return fmt.Errorf("create %T %s: %w", o, o.GetName(), err)
		}
	}
	return nil
}

// reregisterMetricsAPI deletes the Service and APIService of registerMetricsAPI and
// creates them again for port.
func reregisterMetricsAPI(ctx context.Context, c client.Client, port int) error {
	for _, o := range []client.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: metricsServerNamespace, Name: metricsServerName}},
		apiService(port),
	} {
		if err := c.Delete(ctx, o); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete %T %s: %w", o, o.GetName(), err)
		}
	}
	return registerMetricsAPI(ctx, c, port)
}

// apiService is the APIService v1beta1.metrics.k8s.io, as metrics-server's own manifest has it.
// Unstructured, so the controller-runtime client needs no kube-aggregator scheme.
func apiService(port int) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1",
		"kind":       "APIService",
		"metadata":   map[string]any{"name": metricsAPIServiceName},
		"spec": map[string]any{
			"group":                 "metrics.k8s.io",
			"version":               "v1beta1",
			"groupPriorityMinimum":  int64(100),
			"versionPriority":       int64(100),
			"insecureSkipTLSVerify": true,
			"service": map[string]any{
				"namespace": metricsServerNamespace,
				"name":      metricsServerName,
				"port":      int64(port),
			},
		},
	}}
}

// apiServiceAvailable reports the APIService's Available condition ("" when not reported yet).
func apiServiceAvailable(ctx context.Context, c client.Client) (status, message string, err error) {
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("apiregistration.k8s.io/v1")
	u.SetKind("APIService")
	if err := c.Get(ctx, client.ObjectKey{Name: metricsAPIServiceName}, u); err != nil {
		return "", "", err
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Available" {
			s, _ := m["status"].(string)
			msg, _ := m["message"].(string)
			return s, msg, nil
		}
	}
	return "", "", nil
}

// metricsServerInstalled fails early with the install hint when the binary is missing.
func metricsServerInstalled() error {
	if _, err := os.Stat(toolPath("metrics-server")); err != nil {
		return fmt.Errorf("metrics-server not installed at %s (run `make tools` or hack/install-tools.sh): %w", toolPath("metrics-server"), err)
	}
	return nil
}
