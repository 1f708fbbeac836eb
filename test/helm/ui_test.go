package helm

import (
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// TestWebUI: ui.enabled (the default) has the operator serve the web UI on ui.port and a
// ClusterIP Service <fullname>-ui in front of it, which `kubectl port-forward svc/...` reaches;
// ui.enabled=false renders neither the Service, nor the port, nor a --ui-* flag.
func TestWebUI(t *testing.T) {
	t.Run("by default the operator serves the UI on 8082 behind the ClusterIP Service kprof-ui", func(t *testing.T) {
		objs := render(t)
		dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator"))
		op := container(t, dep.Spec.Template.Spec, "operator")
		if !slices.Contains(op.Args, "--ui-listen=:8082") {
			t.Errorf("operator args %q lack --ui-listen=:8082", op.Args)
		}
		if p := port(op, "ui"); p != 8082 {
			t.Errorf("container port ui = %d, want 8082", p)
		}
		svc := convert[corev1.Service](t, find(t, objs, "Service", "kprof-ui"))
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("Service type %q, want ClusterIP: the UI shows every profile to whoever reaches it", svc.Spec.Type)
		}
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("Service selector %v does not select the operator's pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8082 || svc.Spec.Ports[0].TargetPort.String() != "ui" {
			t.Errorf("Service ports %+v, want 8082 → the container's port ui", svc.Spec.Ports)
		}
	})
	t.Run("ui.enabled=false renders no Service, no port and no --ui-* flag", func(t *testing.T) {
		objs := render(t, "--set", "ui.enabled=false,ui.store=s3://profiles/prod")
		for _, o := range objs {
			if o.GetKind() == "Service" && strings.HasSuffix(o.GetName(), "-ui") {
				t.Errorf("Service %s rendered with ui.enabled=false", o.GetName())
			}
		}
		op := container(t, convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator")).Spec.Template.Spec, "operator")
		if p := port(op, "ui"); p != 0 {
			t.Errorf("container port ui = %d with ui.enabled=false", p)
		}
		for _, a := range op.Args {
			if strings.HasPrefix(a, "--ui-") {
				t.Errorf("operator arg %q with ui.enabled=false", a)
			}
		}
	})
	t.Run("ui.port, ui.store and the S3 settings become the operator's flags and the Service's port", func(t *testing.T) {
		objs := render(t, everyOption.args()...)
		op := container(t, convert[appsv1.Deployment](t, find(t, objs, "Deployment", "prof-operator")).Spec.Template.Spec, "operator")
		for _, want := range []string{"--ui-listen=:9090", "--ui-store=s3://profiles/prod", "--ui-s3-endpoint=http://minio.storage:9000", "--ui-s3-region=eu-west-1"} {
			if !slices.Contains(op.Args, want) {
				t.Errorf("operator args %q lack %q", op.Args, want)
			}
		}
		svc := convert[corev1.Service](t, find(t, objs, "Service", "prof-ui"))
		if p := port(op, "ui"); p != 9090 || len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 9090 {
			t.Errorf("container port ui %d, Service ports %+v; want 9090 both", p, svc.Spec.Ports)
		}
	})
}
