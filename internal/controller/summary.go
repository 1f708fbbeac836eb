package controller

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/capture"
)

// DefaultEventInterval is how often a config's summary Events are written: one per
// config and reason per interval, whatever the capture rate.
const DefaultEventInterval = time.Minute

// maxExamples bounds the pods a summary names.
const maxExamples = 3

// summary is what happened to one config's captures and thresholds during one event
// interval, written as one Event per reason at the interval's end.
type summary struct {
	uid        types.UID
	profiles   int64
	pods       map[string]struct{} // pods with a stored profile
	failures   int64
	failedPods map[string]struct{}
	byFailure  map[string]int64
	lastFail   string
	// quietStarts and quietRecoveries are pods whose captures started failing or
	// recovered without an Event of their own (beyond the pod Event rate).
	quietStarts, quietRecoveries int
	crossed                      examples // threshold crossings
	uncomputable                 examples // pods whose percentage cannot be computed
}

// examples counts notes of one kind and keeps the first maxExamples of them.
type examples struct {
	n     int
	first []string
}

func (e *examples) add(note string) {
	e.n++
	if len(e.first) < maxExamples {
		e.first = append(e.first, note)
	}
}

// String lists the notes kept and how many more there were.
func (e *examples) String() string {
	more := ""
	if e.n > len(e.first) {
		more = fmt.Sprintf("; and %d more", e.n-len(e.first))
	}
	return strings.Join(e.first, "; ") + more
}

func newSummary(uid types.UID) *summary {
	return &summary{uid: uid, pods: map[string]struct{}{}, failedPods: map[string]struct{}{}, byFailure: map[string]int64{}}
}

func (s *summary) addResult(res capture.Result) {
	pod := res.Target.Meta.Target
	if res.Err == nil {
		s.profiles++
		s.pods[pod] = struct{}{}
		return
	}
	s.failures++
	s.failedPods[pod] = struct{}{}
	s.byFailure[res.FailureReason]++
	s.lastFail = failureNote(res)
}

// summaryEvent is one Event a summary turns into.
type summaryEvent struct {
	typ, reason, note string
}

// events returns the summary's Events: ProfileCaptured, CaptureFailed, ThresholdCrossed
// and CannotComputePercentage, each only when something of its kind happened.
func (s *summary) events(interval time.Duration) []summaryEvent {
	var out []summaryEvent
	every := interval.Round(time.Second).String()
	if s.profiles > 0 {
		out = append(out, summaryEvent{corev1.EventTypeNormal, ReasonProfileCaptured,
			fmt.Sprintf("captured %d profiles from %d pods in the last %s", s.profiles, len(s.pods), every)})
	}
	if s.failures > 0 {
		reasons := make([]string, 0, len(s.byFailure))
		for r, n := range s.byFailure {
			reasons = append(reasons, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(reasons)
		quiet := ""
		if s.quietStarts > 0 {
			quiet = fmt.Sprintf("; %d pods started failing without an Event of their own (pod Events are limited to %d a second)", s.quietStarts, DefaultPodEventRate)
		}
		out = append(out, summaryEvent{corev1.EventTypeWarning, ReasonCaptureFailed,
			fmt.Sprintf("%d captures of %d pods failed in the last %s (%d profiles captured from %d pods): %s%s; last: %s",
				s.failures, len(s.failedPods), every, s.profiles, len(s.pods), strings.Join(reasons, ", "), quiet, s.lastFail)})
	}
	if s.quietRecoveries > 0 && s.profiles > 0 {
		out[0].note += fmt.Sprintf("; %d pods recovered from failing without an Event of their own", s.quietRecoveries)
	}
	if s.crossed.n > 0 {
		out = append(out, summaryEvent{corev1.EventTypeNormal, ReasonThresholdCrossed,
			fmt.Sprintf("%d pods crossed a threshold in the last %s, a ProfileCapture requested for each: %s",
				s.crossed.n, every, &s.crossed)})
	}
	if s.uncomputable.n > 0 {
		out = append(out, summaryEvent{corev1.EventTypeWarning, ReasonCannotComputePercentage,
			fmt.Sprintf("cannot compute a usage percentage for %d pods (reported in the last %s): %s",
				s.uncomputable.n, every, &s.uncomputable)})
	}
	return out
}

func failureNote(res capture.Result) string {
	return fmt.Sprintf("%s profile of %s failed (%s): %v", res.Type, res.Target.Meta.Target, res.FailureReason, res.Err)
}

// eventWriter keeps one core/v1 Event per config and reason, named after both, and
// rewrites its message, count and last time at each interval: `kubectl describe`
// shows the latest summary and how often it was written. (The events.k8s.io
// recorder would turn a repeated reason into a series that keeps the first note.)
type eventWriter struct {
	reader client.Reader // uncached: the operator does not watch Events
	writer client.Client
	host   string
}

func newEventWriter(reader client.Reader, writer client.Client) *eventWriter {
	host, _ := os.Hostname()
	return &eventWriter{reader: reader, writer: writer, host: host}
}

// summaryEventName is the name of the Event of pc's reason.
func summaryEventName(name, reason string) string {
	n := name + ".kprof-" + strings.ToLower(reason)
	if len(n) > 253 {
		n = n[:253]
	}
	return n
}

// write upserts the Event of reason on the config group (uid): one read, one write.
func (w *eventWriter) write(ctx context.Context, group string, uid types.UID, e summaryEvent, now time.Time) error {
	ns, name := splitGroup(group)
	key := types.NamespacedName{Namespace: ns, Name: summaryEventName(name, e.reason)}
	involved := corev1.ObjectReference{
		Kind: "ProfilingConfig", APIVersion: profilingv1alpha1.GroupVersion.String(),
		Namespace: ns, Name: name, UID: uid,
	}
	t := metav1.NewTime(now)
	var ev corev1.Event
	err := w.reader.Get(ctx, key, &ev)
	switch {
	case apierrors.IsNotFound(err):
		ev = corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: key.Name},
			InvolvedObject: involved,
			Type:           e.typ, Reason: e.reason, Message: truncate(e.note, 1024),
			Source:         corev1.EventSource{Component: "kprof-operator", Host: w.host},
			FirstTimestamp: t, LastTimestamp: t, Count: 1,
		}
		if err := w.writer.Create(ctx, &ev); err != nil {
			return fmt.Errorf("create Event %s: %w", key, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read Event %s: %w", key, err)
	}
	if ev.InvolvedObject.UID != uid { // a config of the same name was deleted and created again
		ev.InvolvedObject, ev.Count, ev.FirstTimestamp = involved, 0, t
	}
	ev.Type, ev.Message, ev.LastTimestamp = e.typ, truncate(e.note, 1024), t
	ev.Count++
	if err := w.writer.Update(ctx, &ev); err != nil {
		return fmt.Errorf("update Event %s: %w", key, err)
	}
	return nil
}
