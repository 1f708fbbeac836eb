package controller

import (
	"context"
	"log/slog"
	"sort"
	"sync"
	"time"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/logging"
)

// Event reasons of capture results. A config gets one summary Event per reason per
// event interval (ProfileCaptured, CaptureFailed); a pod gets CaptureFailed when its
// captures start failing and CaptureRecovered when one succeeds again.
const (
	ReasonProfileCaptured  = "ProfileCaptured"
	ReasonCaptureFailed    = "CaptureFailed"
	ReasonCaptureRecovered = "CaptureRecovered"
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

// podFailing is a pod whose captures fail: it got a CaptureFailed Event when they
// started failing and gets CaptureRecovered when one succeeds.
type podFailing struct {
	since    time.Time
	failures int64
}

// results receives capture results from the engine, keeps per-config tallies until
// the reconciler folds them into status (and wakes it), summaries until the next
// summary Events, and each pod's failure state for its own Events.
type results struct {
	log      *slog.Logger
	recorder events.EventRecorder
	// podEvents bounds the Events of pods whose captures start failing or recover:
	// when every pod fails at once (a NetworkPolicy, an operator outside the pod
	// network) the config's summary speaks for the pods beyond it.
	podEvents *rate.Limiter
	events    *eventWriter // nil: no summary Events (tests of the tallies alone)
	trigger   chan event.GenericEvent
	done      chan struct{}

	mu         sync.Mutex
	configs    map[string]types.UID // group -> config UID (set when the group is synced)
	tallies    map[string]*tally
	summaries  map[string]*summary
	failing    map[string]map[string]*podFailing // group -> target ID -> failing since
	metricsErr map[string]error                  // group -> why pod usage cannot be read (nil/absent: it can)
	pending    map[string]bool                   // group -> a debounced wake is scheduled
	// flushDelay gathers results for this long before the reconciler folds them into
	// status: at scale, status is written at most once per flushDelay per config.
	flushDelay time.Duration
	// eventInterval is the time between a config's summary Events.
	eventInterval time.Duration
}

// Pod Events of failure state changes: at most DefaultPodEventRate a second across
// all configs, after a burst of DefaultPodEventBurst.
const (
	DefaultPodEventRate  = 1
	DefaultPodEventBurst = 20
)

// DefaultStatusInterval bounds how stale status counters may be, and how often a
// busy config's status is written.
const DefaultStatusInterval = 10 * time.Second

func newResults(recorder events.EventRecorder, ew *eventWriter, statusInterval, eventInterval time.Duration, log *slog.Logger) *results {
	if statusInterval <= 0 {
		statusInterval = DefaultStatusInterval
	}
	if eventInterval <= 0 {
		eventInterval = DefaultEventInterval
	}
	return &results{
		log:           logging.OrDiscard(log),
		recorder:      recorder,
		podEvents:     rate.NewLimiter(DefaultPodEventRate, DefaultPodEventBurst),
		events:        ew,
		trigger:       make(chan event.GenericEvent, 1024),
		done:          make(chan struct{}),
		configs:       map[string]types.UID{},
		tallies:       map[string]*tally{},
		summaries:     map[string]*summary{},
		failing:       map[string]map[string]*podFailing{},
		metricsErr:    map[string]error{},
		pending:       map[string]bool{},
		flushDelay:    statusInterval,
		eventInterval: eventInterval,
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
	delete(r.summaries, group)
	delete(r.failing, group)
	delete(r.metricsErr, group)
}

// retain forgets the failure state of group's pods that are no longer targets.
func (r *results) retain(group string, targets map[string]bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for id := range r.failing[group] {
		if !targets[id] {
			delete(r.failing[group], id)
		}
	}
}

// summaryOf returns group's summary of this interval, nil for an untracked group.
// Call with mu held.
func (r *results) summaryOf(group string) *summary {
	uid, ok := r.configs[group]
	if !ok {
		return nil
	}
	s := r.summaries[group]
	if s == nil || s.uid != uid {
		s = newSummary(uid)
		r.summaries[group] = s
	}
	return s
}

// crossed adds a threshold crossing to group's summary.
func (r *results) crossed(group, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.summaryOf(group); s != nil {
		s.crossed.add(note)
	}
}

// uncomputable adds a pod whose usage percentage cannot be computed to group's summary.
func (r *results) uncomputable(group, note string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.summaryOf(group); s != nil {
		s.uncomputable.add(note)
	}
}

// writeSummaries writes and resets the summary of every config that had something
// to report; a summary that cannot be written is logged and dropped (the status
// counters still hold the totals).
func (r *results) writeSummaries(ctx context.Context) {
	r.mu.Lock()
	sums := r.summaries
	r.summaries = map[string]*summary{}
	r.mu.Unlock()
	if r.events == nil {
		return
	}
	groups := make([]string, 0, len(sums))
	for g := range sums {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	now := time.Now()
	for _, g := range groups {
		s := sums[g]
		for _, e := range s.events(r.eventInterval) {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := r.events.write(wctx, g, s.uid, e, now)
			cancel()
			if err != nil && ctx.Err() == nil {
				log.FromContext(ctx).Error(err, "write summary Event", "config", g, "reason", e.reason)
			}
		}
	}
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
	r.mu.Lock()
	uid, tracked := r.configs[res.Group]
	if !tracked {
		r.mu.Unlock()
		return // a deleted config's last results
	}
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
	sum := r.summaryOf(res.Group)
	sum.addResult(res)
	started, recovered := r.podTransition(res)
	began, ended := started, recovered
	if (started || recovered != nil) && !r.podEvents.Allow() {
		if started {
			sum.quietStarts++
		} else {
			sum.quietRecoveries++
		}
		started, recovered = false, nil
	}
	r.mu.Unlock()

	switch {
	case began:
		r.log.Error("captures of a pod started failing; until one succeeds, failures are logged at debug level", "err", res.Err,
			"config", res.Group, "pod", res.Target.Meta.Target, "type", res.Type, "failure", res.FailureReason)
	case ended != nil:
		r.log.Info("captures of a pod succeed again", "config", res.Group, "pod", res.Target.Meta.Target,
			"failedCaptures", ended.failures, "failingSince", ended.since)
	}
	if started || recovered != nil {
		ns, name := splitGroup(res.Group)
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: res.Target.Meta.Namespace, Name: res.Target.Meta.Pod, UID: types.UID(res.Target.ID)}}
		pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: uid}}
		if started {
			r.recorder.Eventf(pod, pc, corev1.EventTypeWarning, ReasonCaptureFailed, "Capture",
				"%s; until a capture succeeds again, failures are counted in the CaptureFailed Events of ProfilingConfig %s", failureNote(res), name)
		} else {
			r.recorder.Eventf(pod, pc, corev1.EventTypeNormal, ReasonCaptureRecovered, "Capture",
				"captured %s profile of %s again (stored as %s) after %d failed captures since %s",
				res.Type, res.Target.Meta.Target, res.Key, recovered.failures, recovered.since.UTC().Format(time.RFC3339))
		}
	}
	r.wakeSoon(res.Group)
}

// podTransition updates the failure state of res's pod: started when its captures
// start failing, recovered (the state that ended) when one succeeds after failures.
// A cancelled capture (the pod or the config went away, shutdown) changes nothing.
// Call with mu held.
func (r *results) podTransition(res capture.Result) (started bool, recovered *podFailing) {
	if res.FailureReason == capture.FailureCanceled {
		return false, nil
	}
	id := res.Target.ID
	pods := r.failing[res.Group]
	f := pods[id]
	switch {
	case res.Err != nil && f == nil:
		if pods == nil {
			pods = map[string]*podFailing{}
			r.failing[res.Group] = pods
		}
		pods[id] = &podFailing{since: res.Started, failures: 1}
		return true, nil
	case res.Err != nil:
		f.failures++
	case f != nil:
		delete(pods, id)
		return false, f
	}
	return false, nil
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
