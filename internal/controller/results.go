package controller

import (
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/event"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
)

// Event reasons.
const (
	ReasonProfileCaptured = "ProfileCaptured"
	ReasonCaptureFailed   = "CaptureFailed"
)

// tally is what happened to one ProfilingConfig's captures since its status was last written.
type tally struct {
	uid          types.UID
	profiles     int64
	failures     int64
	uploads      int64
	lastProfile  time.Time
	last         *capture.Result // most recent result, for the Capturing condition
	lastFailure  *capture.Result
	lastSeenTime time.Time
}

// results receives capture results from the engine, records Events, keeps per-config
// tallies until the reconciler folds them into status, and wakes the reconciler.
type results struct {
	recorder events.EventRecorder
	trigger  chan event.GenericEvent
	done     chan struct{}

	mu         sync.Mutex
	configs    map[string]types.UID // group -> config UID (set when the group is synced)
	tallies    map[string]*tally
	metricsErr map[string]error // group -> why pod usage cannot be read (nil/absent: it can)
	pending    map[string]bool  // group -> a debounced wake is scheduled
	// flushDelay gathers results for this long before the reconciler folds them into
	// status: at scale, one reconcile per result would re-list every selected pod for
	// every capture.
	flushDelay time.Duration
}

// defaultStatusFlushDelay bounds how stale status counters may be.
const defaultStatusFlushDelay = 2 * time.Second

func newResults(recorder events.EventRecorder) *results {
	return &results{
		recorder:   recorder,
		trigger:    make(chan event.GenericEvent, 1024),
		done:       make(chan struct{}),
		configs:    map[string]types.UID{},
		tallies:    map[string]*tally{},
		metricsErr: map[string]error{},
		pending:    map[string]bool{},
		flushDelay: defaultStatusFlushDelay,
	}
}

// track associates group with the config's UID; results of a group that is not
// tracked (a deleted config) only produce pod Events.
func (r *results) track(group string, uid types.UID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.configs[group] = uid
	if t, ok := r.tallies[group]; ok && t.uid != uid {
		delete(r.tallies, group) // recreated config: the old tallies belong to a deleted object
	}
}

func (r *results) forget(group string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.configs, group)
	delete(r.tallies, group)
	delete(r.metricsErr, group)
}

func (r *results) uid(group string) types.UID {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.configs[group]
}

func (r *results) setMetricsError(group string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil {
		delete(r.metricsErr, group)
		return
	}
	r.metricsErr[group] = err
}

func (r *results) metricsError(group string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.metricsErr[group]
}

// take returns the tally of group and resets it; give it back with restore when the
// status write fails.
func (r *results) take(group string, uid types.UID) tally {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tallies[group]
	if !ok || t.uid != uid {
		return tally{uid: uid}
	}
	delete(r.tallies, group)
	return *t
}

func (r *results) restore(group string, old tally) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t, ok := r.tallies[group]
	if !ok {
		cp := old
		r.tallies[group] = &cp
		return
	}
	if t.uid != old.uid {
		return
	}
	t.profiles += old.profiles
	t.failures += old.failures
	t.uploads += old.uploads
	if old.lastProfile.After(t.lastProfile) {
		t.lastProfile = old.lastProfile
	}
	if t.last == nil {
		t.last = old.last
	}
	if t.lastFailure == nil {
		t.lastFailure = old.lastFailure
	}
}

// stop unblocks any OnResult waiting to wake the reconciler.
func (r *results) stop() {
	select {
	case <-r.done:
	default:
		close(r.done)
	}
}

// OnResult is the engine's result callback.
func (r *results) OnResult(res capture.Result) {
	ns, name := splitGroup(res.Group)
	r.mu.Lock()
	uid, tracked := r.configs[res.Group]
	if tracked {
		t, ok := r.tallies[res.Group]
		if !ok {
			t = &tally{uid: uid}
			r.tallies[res.Group] = t
		}
		cp := res
		t.last = &cp
		if res.Err == nil {
			t.profiles++
			end := res.Started.Add(res.Duration)
			if end.After(t.lastProfile) {
				t.lastProfile = end
			}
		} else {
			t.failures++
			t.lastFailure = &cp
		}
	}
	r.mu.Unlock()

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: res.Target.Meta.Namespace, Name: res.Target.Meta.Pod, UID: types.UID(res.Target.ID)}}
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}}
	if res.Err == nil {
		note := fmt.Sprintf("captured %s profile of %s (%d bytes, reason %s) as %s", res.Type, res.Target.Meta.Target, res.Bytes, res.Reason, res.Key)
		r.recorder.Eventf(pod, pc, corev1.EventTypeNormal, ReasonProfileCaptured, "Capture", "%s", note)
		if tracked {
			r.recorder.Eventf(pc, pod, corev1.EventTypeNormal, ReasonProfileCaptured, "Capture", "%s", note)
		}
	} else {
		note := fmt.Sprintf("%s profile of %s failed (%s): %v", res.Type, res.Target.Meta.Target, res.FailureReason, res.Err)
		r.recorder.Eventf(pod, pc, corev1.EventTypeWarning, ReasonCaptureFailed, "Capture", "%s", note)
		if tracked {
			r.recorder.Eventf(pc, pod, corev1.EventTypeWarning, ReasonCaptureFailed, "Capture", "%s", note)
		}
	}
	if tracked {
		r.wakeSoon(res.Group)
	}
}

// wakeSoon wakes the reconciler for group after flushDelay, once for all results
// that arrive meanwhile.
func (r *results) wakeSoon(group string) {
	r.mu.Lock()
	if r.pending[group] {
		r.mu.Unlock()
		return
	}
	r.pending[group] = true
	r.mu.Unlock()
	time.AfterFunc(r.flushDelay, func() {
		r.mu.Lock()
		delete(r.pending, group)
		r.mu.Unlock()
		r.wake(group)
	})
}

// uploaded counts a confirmed upload for group and wakes the reconciler.
func (r *results) uploaded(group string) bool {
	r.mu.Lock()
	uid, tracked := r.configs[group]
	if tracked {
		t, ok := r.tallies[group]
		if !ok {
			t = &tally{uid: uid}
			r.tallies[group] = t
		}
		t.uploads++
	}
	r.mu.Unlock()
	if tracked {
		r.wakeSoon(group)
	}
	return tracked
}

// evicted records an Event for a spooled profile dropped before upload.
func (r *results) evicted(group, key, reason string) {
	ns, name := splitGroup(group)
	r.mu.Lock()
	uid := r.configs[group]
	r.mu.Unlock()
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}}
	r.recorder.Eventf(pc, nil, corev1.EventTypeWarning, "ProfileEvicted", "Spool",
		"spooled profile %s dropped before upload (%s)", key, reason)
}

// wake asks the reconciler to look at group again.
func (r *results) wake(group string) {
	ns, name := splitGroup(group)
	pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	select {
	case r.trigger <- event.GenericEvent{Object: pc}:
	case <-r.done:
	}
}

func splitGroup(group string) (string, string) {
	for i := 0; i < len(group); i++ {
		if group[i] == '/' {
			return group[:i], group[i+1:]
		}
	}
	return "", group
}

func groupOf(pc *profilingv1alpha1.ProfilingConfig) string { return pc.Namespace + "/" + pc.Name }
