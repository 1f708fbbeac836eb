package deploy

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/portforward"
	"github.com/kprof/kprof/internal/testenv"
)

// TestOperatorCapturesThroughPortForwardUnderItsServiceAccount runs the operator with
// --port-forward on a simulated cluster (kwok as the kubelet) with config/portforward's RBAC:
// it captures through pods/portforward; without the portforward binding the refusal names the
// missing verb.
func TestOperatorCapturesThroughPortForwardUnderItsServiceAccount(t *testing.T) {
	objs, err := kustomizeBuild("config/portforward")
	if err != nil {
		t.Fatal(err)
	}
	c := testenv.StartCluster(t, testenv.ClusterOptions{WithoutMetricsServer: true})
	admin, err := client.New(c.Config, client.Options{Scheme: scheme()})
	if err != nil {
		t.Fatal(err)
	}
	// The CRD is installed by testenv already: server-side apply takes it over.
	if err := applyAll(t.Context(), admin, objs, false); err != nil {
		t.Fatal(err)
	}
	const ns, pod, podPort = "deploy-pf", "sample-app-0", 6060
	appPort := startSampleApp(t, "127.0.0.1")
	c.CreatePod(t, testenv.PodSpec{
		Namespace: ns, Name: pod, Labels: map[string]string{"app": "sample-app"},
		Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(podPort)},
		Containers:  []testenv.ContainerSpec{{Name: "app", Port: podPort, CPURequest: "100m"}},
	})
	c.ForwardPodPort(t, ns, pod, podPort, net.JoinHostPort("127.0.0.1", strconv.Itoa(appPort)))
	pc := profilingConfig(ns)
	pc.Spec.Thresholds = nil
	if err := admin.Create(t.Context(), pc); err != nil {
		t.Fatal(err)
	}

	run := startOperator(t, c.Config, true)
	expectCaptured(t, admin, run, pc, pod)

	t.Run("without the portforward binding the refusal names the missing verb", func(t *testing.T) {
		crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "kprof-operator-portforward"}}
		if err := admin.Delete(t.Context(), crb); err != nil {
			t.Fatal(err)
		}
		hc, err := portforward.NewHTTPClient(portforward.Config{RESTConfig: asServiceAccount(c.Config, operatorSA, &denials{})})
		if err != nil {
			t.Fatal(err)
		}
		defer hc.CloseIdleConnections()
		url := "http://" + net.JoinHostPort(portforward.Host(ns, pod), strconv.Itoa(podPort)) + "/debug/pprof/heap"
		var lastErr error
		eventually(t, 15*time.Second, "port-forward refused", func() error {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			resp, err := hc.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return errRefusedYet // the authorizer has not seen the deletion yet
			}
			lastErr = err
			return nil
		})
		if !strings.Contains(lastErr.Error(), `verb "create" on resource "pods/portforward"`) || !apierrors.IsForbidden(lastErr) {
			t.Errorf("error %q does not name the missing verb or is not Forbidden", lastErr)
		}
	})
}

// errRefusedYet: the RBAC authorizer learns of a deleted binding through its informer.
var errRefusedYet = errors.New("port-forward still allowed")
