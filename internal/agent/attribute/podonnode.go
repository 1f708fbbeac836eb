package attribute

import (
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

var (
	// ErrNoCluster: the attributor watches no pods (no API server).
	ErrNoCluster = errors.New("the agent runs without a cluster: no sample is attributed to a pod")
	// ErrPodNotOnNode: the informer of this node's pods does not hold the pod.
	ErrPodNotOnNode = errors.New("pod not on this node")
)

// listFailureTTL is how long a list or watch failure is taken as current when no
// pod event follows it: the reflector retries at least every minute (30 s backoff
// cap, jittered up to twice that), so a failure older than this has stopped recurring.
const listFailureTTL = 2 * time.Minute

// listFailure is a failure to list or watch pods and when it happened.
type listFailure struct {
	err error
	at  time.Time
}

func (a *Attributor) listFailed(err error) { a.listErr.Store(&listFailure{err: err, at: time.Now()}) }

// listOK clears the failure: a pod event came, so the watch works.
func (a *Attributor) listOK() {
	if f := a.listErr.Load(); f != nil {
		a.listErr.CompareAndSwap(f, nil)
	}
}

// PodOnNode reports whether the informer of this node's pods holds pod
// namespace/name: nil when it does, ErrPodNotOnNode when it does not. It cannot
// tell, and says why (the error reads after "agent on node X "), without a
// cluster (ErrNoCluster), before the first list, and while listing or watching
// pods is refused (Forbidden, Unauthorized: the agent could not attribute new
// samples either). It reads the local store only.
func (a *Attributor) PodOnNode(namespace, name string) error {
	if a.informer == nil {
		return ErrNoCluster
	}
	var current error
	if f := a.listErr.Load(); f != nil && time.Since(f.at) < listFailureTTL {
		current = f.err
	}
	synced := a.informer.HasSynced()
	switch {
	case current != nil && (!synced || apierrors.IsForbidden(current) || apierrors.IsUnauthorized(current)):
		return fmt.Errorf("cannot list pods: %w", current)
	case !synced:
		return errors.New("has not listed its pods yet")
	}
	_, exists, err := a.informer.GetStore().GetByKey(namespace + "/" + name)
	if err != nil {
		return fmt.Errorf("look up pod %s/%s: %w", namespace, name, err)
	}
	if !exists {
		return ErrPodNotOnNode
	}
	return nil
}
