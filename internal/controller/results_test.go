package controller

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

func result(pod string, failure string) capture.Result {
	res := capture.Result{
		Group:   "ns/cfg",
		Target:  capture.Target{ID: "uid-" + pod, Meta: storage.Meta{Namespace: "ns", Pod: pod, Target: "ns/" + pod}},
		Type:    capture.TypeHeap,
		Started: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		Key:     "key-" + pod,
	}
	if failure != "" {
		res.Err, res.FailureReason = errors.New("dial tcp: connection refused"), failure
	}
	return res
}

// drain returns the Events the fake recorder holds, as "Type Reason" strings.
func drain(rec *events.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			f := strings.Fields(e)
			out = append(out, f[0]+" "+f[1])
		default:
			return out
		}
	}
}

func TestAPodGetsAnEventOnlyWhenItsCapturesStartFailingOrRecover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failures []string // per capture: "" succeeded, else the failure reason
		want     []string
	}{
		{"a pod that always succeeds gets none", []string{"", "", ""}, nil},
		{"the first failure is reported once, not the ones after it", []string{"ConnectFailed", "ConnectFailed", "Timeout"},
			[]string{"Warning CaptureFailed"}},
		{"a success after failures is a recovery", []string{"", "ConnectFailed", "ConnectFailed", "", ""},
			[]string{"Warning CaptureFailed", "Normal CaptureRecovered"}},
		{"failing again after recovering is reported again", []string{"HTTPStatus", "", "HTTPStatus"},
			[]string{"Warning CaptureFailed", "Normal CaptureRecovered", "Warning CaptureFailed"}},
		{"a cancelled capture changes nothing", []string{"Canceled", "", "ConnectFailed", "Canceled", ""},
			[]string{"Warning CaptureFailed", "Normal CaptureRecovered"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := events.NewFakeRecorder(100)
			r := newResults(rec, nil, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
			r.track("ns/cfg", "cfg-uid")
			for _, f := range tc.failures {
				r.OnResult(result("web", f))
			}
			got := drain(rec)
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("Events %q, want %q", got, tc.want)
			}
			r.mu.Lock()
			tl := *r.tallies["ns/cfg"]
			r.mu.Unlock()
			if n := int64(len(tc.failures)); tl.profiles+tl.failures != n {
				t.Errorf("status tally counts %d profiles + %d failures, want %d results", tl.profiles, tl.failures, n)
			}
		})
	}
	t.Run("a pod that is no longer a target is forgotten", func(t *testing.T) {
		rec := events.NewFakeRecorder(100)
		r := newResults(rec, nil, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
		r.track("ns/cfg", "cfg-uid")
		r.OnResult(result("web", "ConnectFailed"))
		r.retain("ns/cfg", map[string]bool{"uid-other": true})
		r.OnResult(result("web", "ConnectFailed"))
		if got := drain(rec); len(got) != 2 {
			t.Errorf("Events %q, want a CaptureFailed for each time the pod was a target", got)
		}
	})
	t.Run("results of a config that is not tracked are dropped", func(t *testing.T) {
		rec := events.NewFakeRecorder(100)
		r := newResults(rec, nil, time.Hour, time.Hour, slog.New(slog.DiscardHandler))
		r.OnResult(result("web", "ConnectFailed"))
		if got := drain(rec); len(got) != 0 {
			t.Errorf("Events %q for an untracked config", got)
		}
	})
}

func TestAConfigsSummaryIsOneEventPerReasonPerInterval(t *testing.T) {
	r := newResults(events.NewFakeRecorder(100), nil, time.Hour, time.Minute, slog.New(slog.DiscardHandler))
	r.track("ns/cfg", types.UID("cfg-uid"))
	for i := range 1873 {
		r.OnResult(result("p"+strconv.Itoa(i), ""))
	}
	r.OnResult(result("bad-1", "ConnectFailed"))
	r.OnResult(result("bad-1", "ConnectFailed"))
	r.OnResult(result("bad-2", "Timeout"))
	r.crossed("ns/cfg", "ns/hot (cpu 90% of request ≥ 80%)")

	r.mu.Lock()
	s := r.summaries["ns/cfg"]
	r.mu.Unlock()
	got := map[string]summaryEvent{}
	for _, e := range s.events(time.Minute) {
		if _, dup := got[e.reason]; dup {
			t.Errorf("two %s Events in one interval", e.reason)
		}
		got[e.reason] = e
	}
	for reason, want := range map[string]string{
		ReasonProfileCaptured:  "captured 1873 profiles from 1873 pods in the last 1m0s",
		ReasonCaptureFailed:    "3 captures of 2 pods failed in the last 1m0s (1873 profiles captured from 1873 pods): ConnectFailed 2, Timeout 1; last: heap profile of ns/bad-2 failed (Timeout)",
		ReasonThresholdCrossed: "1 pods crossed a threshold in the last 1m0s, a ProfileCapture requested for each: ns/hot (cpu 90% of request ≥ 80%)",
	} {
		if e, ok := got[reason]; !ok || !strings.HasPrefix(e.note, want) {
			t.Errorf("%s Event %q, want it to start with %q", reason, e.note, want)
		}
	}
	if _, ok := got[ReasonCannotComputePercentage]; ok {
		t.Errorf("a CannotComputePercentage Event without such a pod")
	}
	r.writeSummaries(t.Context()) // no writer: only resets
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.summaries) != 0 {
		t.Errorf("summaries kept after the interval: %v", r.summaries)
	}
}

func TestWhenEveryPodFailsAtOnceTheConfigsSummarySpeaksForThePodsBeyondTheEventRate(t *testing.T) {
	const pods = 200
	rec := events.NewFakeRecorder(pods)
	r := newResults(rec, nil, time.Hour, time.Minute, slog.New(slog.DiscardHandler))
	r.track("ns/cfg", "cfg-uid")
	for i := range pods {
		r.OnResult(result("p"+strconv.Itoa(i), "ConnectFailed"))
	}
	own := len(drain(rec))
	if own < DefaultPodEventBurst || own > DefaultPodEventBurst+5 {
		t.Errorf("%d pods got their own CaptureFailed Event at once, want about the burst of %d", own, DefaultPodEventBurst)
	}
	r.mu.Lock()
	s := r.summaries["ns/cfg"]
	r.mu.Unlock()
	if s.quietStarts != pods-own {
		t.Errorf("the summary counts %d pods without an Event of their own, want %d", s.quietStarts, pods-own)
	}
	var note string
	for _, e := range s.events(time.Minute) {
		if e.reason == ReasonCaptureFailed {
			note = e.note
		}
	}
	if want := strconv.Itoa(pods-own) + " pods started failing without an Event of their own"; !strings.Contains(note, want) {
		t.Errorf("CaptureFailed summary %q, want it to say %q", note, want)
	}
}
