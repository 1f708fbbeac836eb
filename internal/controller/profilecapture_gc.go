package controller

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// finishedAt is when pcap finished (its completion time, else its creation).
func finishedAt(pcap *profilingv1alpha1.ProfileCapture) time.Time {
	if pcap.Status.CompletionTime != nil {
		return pcap.Status.CompletionTime.Time
	}
	return pcap.CreationTimestamp.Time
}

// expiresAt is when a finished pcap is deleted.
func expiresAt(pcap *profilingv1alpha1.ProfileCapture) time.Time {
	ttl := int32(defaultTTLSecondsAfterFinished)
	if pcap.Spec.TTLSecondsAfterFinished != nil {
		ttl = *pcap.Spec.TTLSecondsAfterFinished
	}
	return finishedAt(pcap).Add(time.Duration(ttl) * time.Second)
}

// ttlLeft is how long a finished pcap has to live (at least a second, to requeue).
func (r *ProfileCaptureReconciler) ttlLeft(pcap *profilingv1alpha1.ProfileCapture) time.Duration {
	return max(time.Second, expiresAt(pcap).Sub(r.now()))
}

// collect deletes a finished pcap whose TTL ran out, else bounds its namespace's
// finished captures and comes back when the TTL ends.
func (r *ProfileCaptureReconciler) collect(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture) (ctrl.Result, error) {
	if !r.now().Before(expiresAt(pcap)) {
		if r.deleted.has(pcap.UID, r.now()) {
			return ctrl.Result{}, nil // deleted already; the cache has not seen it yet
		}
		if err := r.deleteCapture(ctx, pcap); err != nil {
			return ctrl.Result{}, err
		}
		log.FromContext(ctx).V(1).Info("deleted a finished ProfileCapture after its TTL", "capture", pcap.Namespace+"/"+pcap.Name)
		return ctrl.Result{}, nil
	}
	if err := r.enforceCount(ctx, pcap.Namespace); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.ttlLeft(pcap)}, nil
}

// overCount returns the finished captures beyond the newest max, oldest first.
func overCount(items []profilingv1alpha1.ProfileCapture, limit int) []*profilingv1alpha1.ProfileCapture {
	var done []*profilingv1alpha1.ProfileCapture
	for i := range items {
		if finished(items[i].Status.Phase) && items[i].DeletionTimestamp == nil {
			done = append(done, &items[i])
		}
	}
	if len(done) <= limit {
		return nil
	}
	sort.SliceStable(done, func(i, j int) bool {
		a, b := finishedAt(done[i]), finishedAt(done[j])
		if !a.Equal(b) {
			return a.Before(b)
		}
		// Times are kept to the second: among captures that finished in the same
		// second, the last written (etcd's revision, in practice) is the newest.
		ra, errA := strconv.ParseInt(done[i].ResourceVersion, 10, 64)
		rb, errB := strconv.ParseInt(done[j].ResourceVersion, 10, 64)
		if errA == nil && errB == nil && ra != rb {
			return ra < rb
		}
		return done[i].Name < done[j].Name
	})
	return done[:len(done)-limit]
}

// enforceCount deletes the oldest finished captures of namespace beyond MaxPerNamespace.
// A cache that has not seen earlier deletions yet lists them first again: they still
// count against the bound (no newer one is deleted for them) and are not deleted again.
func (r *ProfileCaptureReconciler) enforceCount(ctx context.Context, namespace string) error {
	if r.d.MaxPerNamespace <= 0 {
		return nil
	}
	var list profilingv1alpha1.ProfileCaptureList
	if err := r.List(ctx, &list, client.InNamespace(namespace)); err != nil {
		return fmt.Errorf("list ProfileCaptures of namespace %s: %w", namespace, err)
	}
	deleted := 0
	for _, v := range overCount(list.Items, r.d.MaxPerNamespace) {
		if r.deleted.has(v.UID, r.now()) {
			continue
		}
		if err := r.deleteCapture(ctx, v); err != nil {
			return err
		}
		deleted++
	}
	if deleted > 0 {
		log.FromContext(ctx).Info("deleted the oldest finished ProfileCaptures beyond the namespace's bound",
			"namespace", namespace, "deleted", deleted, "max", r.d.MaxPerNamespace)
	}
	return nil
}

func (r *ProfileCaptureReconciler) deleteCapture(ctx context.Context, pcap *profilingv1alpha1.ProfileCapture) error {
	uid := pcap.UID
	err := r.Delete(ctx, pcap, client.Preconditions{UID: &uid})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete ProfileCapture %s/%s: %w", pcap.Namespace, pcap.Name, err)
	}
	r.deleted.add(uid, r.now())
	return nil
}

// recentDeletes is a set of deleted objects' UIDs, each forgotten after
// recentDeleteMemory: by then the cache has seen the deletion (a UID is never
// reused, so remembering one too long costs only memory). The zero value is ready.
type recentDeletes struct {
	mu    sync.Mutex
	at    map[types.UID]time.Time
	swept time.Time
}

const recentDeleteMemory = 5 * time.Minute

func (d *recentDeletes) add(uid types.UID, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.at == nil {
		d.at = map[types.UID]time.Time{}
	}
	d.at[uid] = now
	if now.Sub(d.swept) >= recentDeleteMemory {
		d.swept = now
		for u, t := range d.at {
			if now.Sub(t) >= recentDeleteMemory {
				delete(d.at, u)
			}
		}
	}
}

func (d *recentDeletes) has(uid types.UID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	t, ok := d.at[uid]
	return ok && now.Sub(t) < recentDeleteMemory
}
