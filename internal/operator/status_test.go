package operator_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

var runs atomic.Int32

// TestAnotherWritersCountIsNotUndoneByTheNextStatusWrite: a standby replica adds the
// uploads of its spool to status.totalUploads while the leader runs. The leader's
// next status write (a pod more selected) must keep that count, though the status
// the leader last wrote itself, its base, has not seen it.
func TestAnotherWritersCountIsNotUndoneByTheNextStatusWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	ns := fmt.Sprintf("two-writers-%d", runs.Add(1)) // -count=N reruns in the suite's one cluster
	createNamespace(t, ns)
	app := map[string]string{"app": "counted"}
	createPod(t, ns, podSpec{name: "api-0", labels: app, annotated: true, ip: "127.0.0.101", ready: true})
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "counted"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:     profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: app}},
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	get := func() (*profilingv1alpha1.ProfilingConfig, error) {
		var got profilingv1alpha1.ProfilingConfig
		return &got, k8sClient.Get(ctx, client.ObjectKeyFromObject(pc), &got)
	}
	eventually(t, time.Minute, "the operator writes activePods 1", func() error {
		got, err := get()
		if err != nil {
			return err
		}
		if got.Status.ActivePods != 1 {
			return fmt.Errorf("activePods = %d", got.Status.ActivePods)
		}
		return nil
	})

	// The other writer: read, add, update (a conflict with the operator is retried).
	const foreign = 7
	if err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		got, err := get()
		if err != nil {
			return err
		}
		got.Status.TotalUploads += foreign
		return k8sClient.Status().Update(ctx, got)
	}); err != nil {
		t.Fatal(err)
	}
	createPod(t, ns, podSpec{name: "api-1", labels: app, annotated: true, ip: "127.0.0.102", ready: true})

	eventually(t, time.Minute, "activePods 2 with the other writer's uploads kept", func() error {
		got, err := get()
		if err != nil {
			return err
		}
		if got.Status.ActivePods != 2 {
			return fmt.Errorf("activePods = %d", got.Status.ActivePods)
		}
		if got.Status.TotalUploads != foreign {
			t.Fatalf("totalUploads = %d after the operator's write of activePods 2, want the other writer's %d", got.Status.TotalUploads, foreign)
		}
		return nil
	})
}
