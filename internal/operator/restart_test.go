package operator_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/controller"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// runOperator starts an operator against cfg and returns a stop function that waits for it.
func runOperator(t *testing.T, env *testenv.Env, opts operator.Options) (stop func()) {
	t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 operator.NewScheme(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlConfigUniqueNames(),
	})
	if err != nil {
		t.Fatalf("manager: %v", err)
	}
	if err := operator.Setup(mgr, opts); err != nil {
		t.Fatalf("operator setup: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("operator stopped with error: %v", err)
		}
	}
	t.Cleanup(stop)
	return stop
}

func TestOperatorRestartDeliversTheSpool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Its own control plane: the suite's operator must not capture these pods.
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c, err := client.New(env.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.Stop(t) // the store is down while the first operator captures

	for _, ns := range []string{secretsNamespace, "restart"} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: secretsNamespace, Name: "minio"},
		Data:       map[string][]byte{controller.SecretKeyAccessKeyID: []byte(m.AccessKey), controller.SecretKeySecretAccessKey: []byte(m.SecretKey)},
	}); err != nil {
		t.Fatal(err)
	}
	port := startSampleApp(t, "127.0.0.61")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "restart", Name: "api-0", Annotations: map[string]string{
			profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: fmt.Sprint(port)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sample-app:dev"}}},
	}
	if err := c.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "127.0.0.61",
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := c.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "restart", Name: "spooled"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap", "goroutine"},
			S3Config:     s3Config(m, "profiles", "", "minio"),
		},
	}
	if err := c.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}

	spool := filepath.Join(t.TempDir(), "spool")
	opts := func(reg *prometheus.Registry) operator.Options {
		return operator.Options{
			ProfilesDir: filepath.Join(t.TempDir(), "profiles"), SpoolDir: spool, SecretsNamespace: secretsNamespace,
			RequestTimeout: 5 * time.Second, ShutdownGrace: 2 * time.Second, Registerer: reg,
		}
	}
	regA := prometheus.NewRegistry()
	stopA := runOperator(t, env, opts(regA))
	var spooled float64
	eventually(t, 60*time.Second, "profiles captured into the spool while the store is down", func() error {
		var got profilingv1alpha1.ProfilingConfig
		if err := c.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
			return err
		}
		cond := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionStorageReady)
		if cond == nil || cond.Status != metav1.ConditionFalse || cond.Reason != "EndpointUnreachable" {
			return fmt.Errorf("StorageReady = %+v", cond)
		}
		spooled = sumFrom(t, regA, "kprof_spool_entries")
		if spooled < 2 {
			return fmt.Errorf("%v profiles spooled", spooled)
		}
		return nil
	})
	// No more captures: the pod goes away (it stays Terminating without a kubelet, which
	// the operator treats as gone), then the operator stops with profiles in its spool.
	if err := c.Delete(ctx, pod); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "no active pods", func() error {
		var got profilingv1alpha1.ProfilingConfig
		if err := c.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
			return err
		}
		if got.Status.ActivePods != 0 {
			return fmt.Errorf("activePods = %d", got.Status.ActivePods)
		}
		return nil
	})
	stopA()
	captured := sumFrom(t, regA, "kprof_captures_total", "result", "success")
	if captured < 2 {
		t.Fatalf("first operator captured %v profiles", captured)
	}
	if uploads := sumFrom(t, regA, "kprof_spool_uploads_total", "result", "success"); uploads != 0 {
		t.Fatalf("%v uploads succeeded while the store was down", uploads)
	}

	m.Start(t)
	regB := prometheus.NewRegistry()
	runOperator(t, env, opts(regB))
	eventually(t, 60*time.Second, "every spooled profile uploaded by the restarted operator", func() error {
		if n := len(listObjects(t, m, "profiles")); float64(n) != captured {
			return fmt.Errorf("%d objects in the bucket, %v captured", n, captured)
		}
		if left := sumFrom(t, regB, "kprof_spool_entries"); left != 0 {
			return fmt.Errorf("%v entries still spooled", left)
		}
		var got profilingv1alpha1.ProfilingConfig
		if err := c.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
			return err
		}
		if float64(got.Status.TotalUploads) != captured {
			return fmt.Errorf("totalUploads = %d, want %v", got.Status.TotalUploads, captured)
		}
		return nil
	})
}

// sumFrom sums a metric's series in reg whose labels include the given name/value pairs.
func sumFrom(t *testing.T, reg *prometheus.Registry, name string, labelPairs ...string) float64 {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labelPairs); i += 2 {
		want[labelPairs[i]] = labelPairs[i+1]
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if !labelsMatch(m.Label, want) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.GetCounter().GetValue()
			case m.Gauge != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// ctrlConfigUniqueNames lets a second manager in this test process register the same
// controller name as the suite's operator.
func ctrlConfigUniqueNames() ctrlconfig.Controller {
	skip := true
	return ctrlconfig.Controller{SkipNameValidation: &skip}
}
