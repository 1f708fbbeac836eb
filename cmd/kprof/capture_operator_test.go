package main

import (
	"context"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

func TestCapturePodViaOperator(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	ctx := context.Background()
	cl, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kprof-system"}}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	const ns = "shop"
	for _, p := range []struct {
		name      string
		annotated bool
	}{{"checkout", true}, {"opted-out", false}} {
		ann := map[string]string{profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}
		if p.annotated {
			ann[profilingv1alpha1.AnnotationEnabled] = "true"
		}
		pod := c.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: p.name, Annotations: ann,
			Containers: []testenv.ContainerSpec{{Name: "main", Port: port}}})
		testenv.StartSampleApp(t, net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(port)))
	}
	if err := cl.Create(ctx, &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shop"},
		Spec:       profilingv1alpha1.ProfilingConfigSpec{ProfileTypes: []profilingv1alpha1.ProfileType{"heap"}},
	}); err != nil {
		t.Fatal(err)
	}
	skip := true
	mgr, err := ctrl.NewManager(c.Config, ctrl.Options{
		Scheme: operator.NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		Controller: ctrlconfig.Controller{SkipNameValidation: &skip},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := operator.Setup(mgr, operator.Options{
		ProfilesDir: dir, SpoolDir: filepath.Join(t.TempDir(), "spool"), SecretsNamespace: "kprof-system",
		Registerer: prometheus.NewRegistry(), RESTConfig: c.Config, DisableThresholds: true, ShutdownGrace: 2 * time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	mctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator: %v", err)
		}
	})

	t.Run("a capture the operator stores prints each profile's type, location and size", func(t *testing.T) {
		stdout, stderr, err := execute(t, newCaptureCmd(), "pod", ns+"/checkout", "--via-operator", "--kubeconfig", c.Kubeconfig,
			"--types", "cpu,heap", "--duration", "1s", "--reason", "incident 4711", "--timeout", "2m")
		if err != nil {
			t.Fatalf("capture: %v\nstderr:\n%s", err, stderr)
		}
		var types []string
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			f := strings.Fields(line)
			if len(f) != 4 || !strings.HasPrefix(f[1], "file://") {
				continue
			}
			types = append(types, f[0])
			u, _ := url.Parse(f[1])
			st, err := os.Stat(u.Path)
			if err != nil || "("+strconv.FormatInt(st.Size(), 10) != f[2] {
				t.Errorf("%s: %v, size %s", line, err, f[2])
			}
		}
		if strings.Join(types, ",") != "cpu,heap" || !strings.Contains(stdout, "Stored") || !strings.Contains(stdout, "no kprof agent runs on node") {
			t.Errorf("stdout:\n%s", stdout)
		}
		var list profilingv1alpha1.ProfileCaptureList
		if err := cl.List(ctx, &list, client.InNamespace(ns)); err != nil || len(list.Items) != 1 {
			t.Fatalf("ProfileCaptures: %v %d", err, len(list.Items))
		}
		if s := list.Items[0].Spec; s.Requester == "" || s.Reason != "incident 4711" || s.CPUDurationSeconds != 1 || len(s.ProfileTypes) != 2 {
			t.Errorf("spec %+v, want the requester, reason, duration and types asked for", s)
		}
	})

	t.Run("a pod that opted out fails with the operator's message", func(t *testing.T) {
		_, _, err := execute(t, newCaptureCmd(), "pod", ns+"/opted-out", "--via-operator", "--kubeconfig", c.Kubeconfig, "--timeout", "1m")
		if err == nil || !strings.Contains(err.Error(), "failed") || !strings.Contains(err.Error(), "has not opted in to profiling") {
			t.Fatalf("err %v, want the capture's failure", err)
		}
	})
}
