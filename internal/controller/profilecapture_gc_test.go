package controller

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// staleCache lists what it listed first, as an informer that has not seen the
// deletions yet, and counts the deletes sent to the API server.
type staleCache struct {
	client.Client
	first   *profilingv1alpha1.ProfileCaptureList
	deletes atomic.Int32
}

func (c *staleCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if c.first != nil {
		c.first.DeepCopyInto(list.(*profilingv1alpha1.ProfileCaptureList))
		return nil
	}
	if err := c.Client.List(ctx, list, opts...); err != nil {
		return err
	}
	c.first = list.(*profilingv1alpha1.ProfileCaptureList).DeepCopy()
	return nil
}

func (c *staleCache) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.deletes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func TestTheCountBoundDeletesEachCaptureOnceWhileTheCacheStillListsIt(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := profilingv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	var objs []client.Object
	for i := range 5 {
		done := metav1.NewTime(t0.Add(time.Duration(i) * time.Minute))
		objs = append(objs, &profilingv1alpha1.ProfileCapture{
			ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("cap-%d", i), UID: types.UID(fmt.Sprintf("uid-%d", i))},
			Status:     profilingv1alpha1.ProfileCaptureStatus{Phase: profilingv1alpha1.CaptureStored, CompletionTime: &done},
		})
	}
	cl := &staleCache{Client: fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(objs...).Build()}
	now := t0.Add(time.Hour)
	r := &ProfileCaptureReconciler{Client: cl, d: ProfileCaptureDeps{Client: cl, MaxPerNamespace: 2, Now: func() time.Time { return now }}}
	for range 3 { // three reconciles of captures of the namespace before the cache catches up
		if err := r.enforceCount(context.Background(), "ns"); err != nil {
			t.Fatal(err)
		}
	}
	if n := cl.deletes.Load(); n != 3 {
		t.Errorf("%d deletes for the 3 captures beyond the bound of 2, over three reconciles with a stale cache: want each deleted once", n)
	}
	var left profilingv1alpha1.ProfileCaptureList
	if err := cl.Client.List(context.Background(), &left); err != nil {
		t.Fatal(err)
	}
	if len(left.Items) != 2 || left.Items[0].Name != "cap-3" || left.Items[1].Name != "cap-4" {
		t.Errorf("left %d captures %v, want the newest two, cap-3 and cap-4", len(left.Items), left.Items)
	}
	t.Run("a UID is forgotten after a while", func(t *testing.T) {
		if !r.deleted.has("uid-0", now) || r.deleted.has("uid-0", now.Add(recentDeleteMemory)) {
			t.Error("uid-0 should be remembered now and forgotten after recentDeleteMemory")
		}
	})
}
