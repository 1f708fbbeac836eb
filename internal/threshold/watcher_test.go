package threshold

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

const grp = "ns/pc"

func TestACrossingRecordsThenTriggersOnceWithTheReason(t *testing.T) {
	h := newHarness(t, nil)
	pod, cool := hotPod("web-1"), hotPod("web-2")
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "100Mi"), "web-2": sample("web-2", "100m", "100Mi")}, nil)
	h.w.Sync(grp, policy(), []Target{target(pod), target(cool)})
	h.start(t)
	h.check(t)
	h.idle(t, grp)

	const reason = "cpu 93% of request ≥ 80%"
	want := []string{"record ns/pc uid-web-1 " + reason, "trigger ns/pc uid-web-1 " + reason}
	if got := h.journal.snapshot(); !reflect.DeepEqual(got, want) {
		t.Errorf("calls = %q, want %q", got, want)
	}
	if rec := h.store.recorded(); len(rec) != 1 || !rec[0].at.Equal(t0) {
		t.Errorf("records = %+v, want one at %s", rec, t0)
	}
	if h.source.last.namespace != "ns" || h.source.last.selector != "app=web" {
		t.Errorf("usage read for %q %q, want ns app=web", h.source.last.namespace, h.source.last.selector)
	}
	_, _, triggered := h.reporter.snapshot()
	if len(triggered) != 1 || triggered[0].pod != "web-1" || triggered[0].crossing.Reason() != reason {
		t.Fatalf("Triggered reports = %+v, want one for web-1", triggered)
	}
	// The fake clock stands still during the check: the sample is 20s old at
	// detection and the decision takes no time.
	if l := triggered[0].latency; l != (Latency{MetricsAge: 20 * time.Second, Detect: 20 * time.Second}) {
		t.Errorf("latency = %+v, want MetricsAge and Detect 20s, Decide 0", l)
	}
	if got := testutil.ToFloat64(h.metrics.triggers.WithLabelValues("cpu")); got != 1 {
		t.Errorf("kprof_triggers_total{resource=cpu} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.checks.WithLabelValues(CheckSuccess)); got != 1 {
		t.Errorf("kprof_trigger_checks_total{result=success} = %v, want 1", got)
	}
	if got := testutil.CollectAndCount(h.metrics.latency); got != 2 {
		t.Errorf("latency series = %d, want 2 (metrics, kprof)", got)
	}
}

func TestCooldownSuppressesCrossingsUntilItEnds(t *testing.T) {
	steps := []struct {
		name        string
		at          time.Time
		wantRecords int
	}{
		{"a first crossing triggers", t0, 1},
		{"a crossing a minute later is inside the cooldown", t0.Add(time.Minute), 1},
		{"a crossing a nanosecond before the cooldown ends is still inside it", t0.Add(5*time.Minute - 1), 1},
		{"a crossing when the cooldown ends triggers again", t0.Add(5 * time.Minute), 2},
	}
	h := newHarness(t, nil)
	pod := hotPod("web-1")
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(pod)})
	h.start(t)
	for _, s := range steps {
		h.clock.set(s.at)
		h.check(t)
		h.idle(t, grp)
		if got := len(h.store.recorded()); got != s.wantRecords {
			t.Fatalf("%s: %d records, want %d", s.name, got, s.wantRecords)
		}
		if got := len(h.capturer.returnedCalls()); got != s.wantRecords {
			t.Fatalf("%s: %d triggers, want %d", s.name, got, s.wantRecords)
		}
	}
	if got := testutil.ToFloat64(h.metrics.suppressed.WithLabelValues(SuppressedCooldown)); got != 2 {
		t.Errorf("kprof_trigger_suppressed_total{reason=cooldown} = %v, want 2", got)
	}
}

func TestCooldownHoldsWhenTheStoreCacheHasNotSeenTheRecordYet(t *testing.T) {
	h := newHarness(t, nil)
	h.store.blind = true
	pod := hotPod("web-1")
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(pod)})
	h.start(t)
	h.check(t)
	h.idle(t, grp)
	h.clock.set(t0.Add(time.Minute))
	h.check(t)
	if got := len(h.store.recorded()); got != 1 {
		t.Errorf("%d records, want 1: the trigger this process recorded must hold the cooldown", got)
	}
}

func TestAFailedRecordStartsNoCapture(t *testing.T) {
	h := newHarness(t, nil)
	pod := hotPod("web-1")
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.store.setErr(errors.New("status patch: connection refused"))
	h.w.Sync(grp, policy(), []Target{target(pod)})
	h.start(t)
	h.check(t)

	if got := h.journal.snapshot(); len(got) != 1 || !strings.HasPrefix(got[0], "record ") {
		t.Errorf("calls = %q, want a single record attempt and no trigger", got)
	}
	if _, _, triggered := h.reporter.snapshot(); len(triggered) != 0 {
		t.Errorf("Triggered reports = %+v, want none", triggered)
	}
	if got := testutil.ToFloat64(h.metrics.recordFailures); got != 1 {
		t.Errorf("kprof_trigger_record_failures_total = %v, want 1", got)
	}

	// The failed attempt does not start a cooldown: once Record works, the next check triggers.
	h.store.setErr(nil)
	h.check(t)
	h.idle(t, grp)
	if got := len(h.capturer.returnedCalls()); got != 1 {
		t.Errorf("%d triggers after Record recovered, want 1", got)
	}
}

func TestMetricsUnavailableIsReportedOnTransitionsOnly(t *testing.T) {
	h := newHarness(t, nil)
	pod := hotPod("web-1")
	down := fmt.Errorf("list pod metrics: %w", &sourceError{reason: MetricsServiceUnavailable, unavailable: true,
		err: apierrors.NewServiceUnavailable("the server is currently unable to handle the request")})
	h.source.set(nil, down)
	h.w.Sync(grp, policy(), []Target{target(pod)})
	h.start(t)
	for range 3 {
		h.check(t)
	}
	unavailable, _, _ := h.reporter.snapshot()
	if len(unavailable) != 1 || !errors.Is(unavailable[0], down) {
		t.Fatalf("MetricsUnavailable reports = %v, want exactly one with the source's error", unavailable)
	}
	if got := testutil.ToFloat64(h.metrics.checks.WithLabelValues(CheckUnavailable)); got != 3 {
		t.Errorf("kprof_trigger_checks_total{result=unavailable} = %v, want 3", got)
	}
	if got := h.journal.snapshot(); len(got) != 0 {
		t.Errorf("calls while metrics are down = %q, want none", got)
	}

	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	for range 2 {
		h.check(t)
	}
	h.idle(t, grp)
	unavailable, _, _ = h.reporter.snapshot()
	if len(unavailable) != 2 || unavailable[1] != nil {
		t.Errorf("MetricsUnavailable reports = %v, want the failure then one nil for the recovery", unavailable)
	}
	if got := len(h.capturer.returnedCalls()); got != 1 {
		t.Errorf("%d triggers after recovery, want 1", got)
	}
}

func TestAFailureOtherThanUnavailableIsCountedAsFailure(t *testing.T) {
	h := newHarness(t, nil)
	forbidden := &sourceError{reason: MetricsForbidden,
		err: apierrors.NewForbidden(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "", errors.New("rbac"))}
	h.source.set(nil, forbidden)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1"))})
	h.start(t)
	h.check(t)
	if got := testutil.ToFloat64(h.metrics.checks.WithLabelValues(CheckFailure)); got != 1 {
		t.Errorf("kprof_trigger_checks_total{result=failure} = %v, want 1", got)
	}
	if unavailable, _, _ := h.reporter.snapshot(); len(unavailable) != 1 || MetricsErrorReason(unavailable[0]) != MetricsForbidden {
		t.Errorf("MetricsUnavailable reports = %v, want one with reason %s", unavailable, MetricsForbidden)
	}
}

func TestUncomputablePodsAreReportedOncePerProblemSet(t *testing.T) {
	noRequests := podOf("bare", ctr("app", nil, nil))
	cpuOnly := podOf("bare", ctr("app", res("1", ""), nil))
	fixed := podOf("bare", ctr("app", res("1", "1Gi"), nil))
	other := podOf("other", ctr("app", nil, nil))
	steps := []struct {
		name    string
		targets []Target
		want    []uncomputableReport // new reports after this step
	}{
		{"a pod without requests or limits is reported", []Target{target(noRequests), target(other)}, []uncomputableReport{
			{"bare", []string{"container app: no cpu request or limit", "container app: no memory request or limit"}},
			{"other", []string{"container app: no cpu request or limit", "container app: no memory request or limit"}},
		}},
		{"the same problems are not reported again", []Target{target(noRequests), target(other)}, nil},
		{"a changed problem set is reported", []Target{target(cpuOnly), target(other)}, []uncomputableReport{
			{"bare", []string{"container app: no memory request or limit"}},
		}},
		{"a fixed pod is not reported", []Target{target(fixed), target(other)}, nil},
		{"a problem that comes back is reported again", []Target{target(cpuOnly), target(other)}, []uncomputableReport{
			{"bare", []string{"container app: no memory request or limit"}},
		}},
		{"a pod that leaves the group is forgotten", []Target{target(cpuOnly)}, nil},
		{"and reported again when it comes back", []Target{target(cpuOnly), target(other)}, []uncomputableReport{
			{"other", []string{"container app: no cpu request or limit", "container app: no memory request or limit"}},
		}},
	}
	h := newHarness(t, nil)
	h.source.set(map[string]PodUsage{"bare": sample("bare", "1", "1Gi"), "other": sample("other", "1", "1Gi")}, nil)
	h.w.Sync(grp, policy(), steps[0].targets)
	h.start(t)
	seen := 0
	for _, s := range steps {
		h.w.Sync(grp, policy(), s.targets)
		h.check(t)
		_, reports, _ := h.reporter.snapshot()
		got := reports[seen:]
		slices.SortFunc(got, func(a, b uncomputableReport) int { return strings.Compare(a.pod, b.pod) })
		if len(got) != len(s.want) || (len(got) > 0 && !reflect.DeepEqual(got, s.want)) {
			t.Fatalf("%s: new reports %+v, want %+v", s.name, got, s.want)
		}
		seen = len(reports)
	}
}

func TestRemoveStopsTheChecksAndCancelsRunningTriggers(t *testing.T) {
	h := newHarness(t, nil)
	h.capturer.release(true)
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1"))})
	h.start(t)
	h.check(t)
	eventually(t, "the trigger to start", func() bool { return h.capturer.enteredCount() == 1 })

	h.w.Remove(grp)
	h.clock.fire()
	if err := h.w.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if got := h.source.callCount(); got != 1 {
		t.Errorf("%d usage reads, want 1: no check after Remove", got)
	}
	calls := h.capturer.returnedCalls()
	if len(calls) != 1 || !errors.Is(calls[0].ctxErr, errGroupRemoved) {
		t.Errorf("trigger calls = %+v, want one cancelled because its group was removed", calls)
	}
	h.w.Remove(grp) // removing an unknown group is harmless
}

func TestSyncReplacesTargetsAndPolicy(t *testing.T) {
	h := newHarness(t, nil)
	a, b := hotPod("web-1"), hotPod("web-2")
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", ""), "web-2": sample("web-2", "850m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(a)})
	h.start(t)

	p := policy()
	p.Rule.CPUPercent = 90 // web-1 at 93% crosses, web-2 at 85% does not
	h.w.Sync(grp, p, []Target{target(b)})
	h.check(t)
	if got := h.journal.snapshot(); len(got) != 0 {
		t.Errorf("calls = %q, want none: web-1 left the group and web-2 is below the new threshold", got)
	}
	p.Rule.CPUPercent = 85
	h.w.Sync(grp, p, []Target{target(a), target(b)})
	h.check(t)
	h.idle(t, grp)
	if got := len(h.store.recorded()); got != 2 {
		t.Errorf("%d records, want 2", got)
	}
}

func TestAStormOfCrossingsIsCappedAndTheRestDeferred(t *testing.T) {
	const pods = 200
	h := newHarness(t, nil)
	h.capturer.release(true)
	usage := make(map[string]PodUsage, pods)
	targets := make([]Target, 0, pods)
	for i := range pods {
		name := fmt.Sprintf("web-%03d", i)
		usage[name] = sample(name, fmt.Sprintf("%dm", 800+i), "") // web-199 is the hottest
		targets = append(targets, target(hotPod(name)))
	}
	h.source.set(usage, nil)
	h.w.Sync(grp, policy(), targets)
	h.start(t)
	h.check(t)
	eventually(t, "64 triggers to start", func() bool { return h.capturer.enteredCount() == DefaultMaxInFlight })

	rec := h.store.recorded()
	if len(rec) != DefaultMaxInFlight {
		t.Fatalf("%d records, want %d", len(rec), DefaultMaxInFlight)
	}
	for i, r := range rec {
		if want := fmt.Sprintf("web-%03d", pods-1-i); r.pod != want {
			t.Fatalf("record %d is %s, want %s: the hottest pods go first", i, r.pod, want)
		}
	}
	if got := testutil.ToFloat64(h.metrics.suppressed.WithLabelValues(SuppressedBusy)); got != pods-DefaultMaxInFlight {
		t.Errorf("kprof_trigger_suppressed_total{reason=busy} = %v, want %d", got, pods-DefaultMaxInFlight)
	}

	// While all slots are taken, a check starts nothing.
	h.check(t)
	if got := len(h.store.recorded()); got != DefaultMaxInFlight {
		t.Errorf("%d records with every slot taken, want %d", got, DefaultMaxInFlight)
	}

	// Once they finish, the next check takes the next 64; the first ones are in their cooldown.
	h.capturer.release(true)
	h.idle(t, grp)
	h.check(t)
	eventually(t, "64 more triggers to start", func() bool { return h.capturer.enteredCount() == 2*DefaultMaxInFlight })
	h.capturer.release(false)
	h.idle(t, grp)
	rec = h.store.recorded()
	if len(rec) != 2*DefaultMaxInFlight {
		t.Fatalf("%d records, want %d", len(rec), 2*DefaultMaxInFlight)
	}
	seen := map[string]bool{}
	for _, r := range rec {
		if seen[r.pod] {
			t.Errorf("%s recorded twice", r.pod)
		}
		seen[r.pod] = true
	}
	// Checks 2 and 3 each saw the first 64 in their cooldown.
	if got, want := testutil.ToFloat64(h.metrics.suppressed.WithLabelValues(SuppressedCooldown)), 2*DefaultMaxInFlight; got != float64(want) {
		t.Errorf("kprof_trigger_suppressed_total{reason=cooldown} = %v, want %d", got, want)
	}
	// Deferred: 136 at check 1, 136 at check 2 (no slot free), 72 at check 3.
	if got, want := testutil.ToFloat64(h.metrics.suppressed.WithLabelValues(SuppressedBusy)), 3*pods-4*DefaultMaxInFlight; got != float64(want) {
		t.Errorf("kprof_trigger_suppressed_total{reason=busy} = %v, want %d", got, want)
	}
}

func TestAPodWhoseTriggerIsStillRunningIsNotTriggeredAgain(t *testing.T) {
	h := newHarness(t, nil)
	h.capturer.release(true)
	p := policy()
	p.Rule.Cooldown = 0
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, p, []Target{target(hotPod("web-1"))})
	h.start(t)
	h.check(t)
	h.check(t)
	if got := len(h.store.recorded()); got != 1 {
		t.Errorf("%d records, want 1", got)
	}
	if got := testutil.ToFloat64(h.metrics.suppressed.WithLabelValues(SuppressedBusy)); got != 1 {
		t.Errorf("kprof_trigger_suppressed_total{reason=busy} = %v, want 1", got)
	}
}

func TestChecksAreJittered(t *testing.T) {
	h := newHarness(t, nil)
	h.source.set(map[string]PodUsage{}, nil)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1"))})
	h.start(t)
	for range 20 {
		h.check(t)
	}
	p := policy()
	p.CheckInterval = time.Minute
	h.w.Sync(grp, p, nil)
	h.clock.waitArmed(t, 22)

	delays := h.clock.askedDelays()
	inRange := func(d, lo, hi time.Duration) bool { return d >= lo && d <= hi }
	if d := delays[0]; !inRange(d, 0, 3*time.Second) {
		t.Errorf("first delay %s, want within [0, 3s] (10%% of 30s)", d)
	}
	for i, d := range delays[1:21] {
		if !inRange(d, 27*time.Second, 33*time.Second) {
			t.Errorf("delay %d is %s, want 30s ± 10%%", i+1, d)
		}
	}
	if d := delays[21]; !inRange(d, 0, 6*time.Second) {
		t.Errorf("delay after the interval changed to 1m is %s, want within [0, 6s]", d)
	}
}

func TestShutdownLetsARunningTriggerFinish(t *testing.T) {
	h := newHarness(t, nil)
	h.capturer.release(true)
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1"))})
	h.start(t)
	h.check(t)
	eventually(t, "the trigger to start", func() bool { return h.capturer.enteredCount() == 1 })

	done := make(chan error, 1)
	go func() { done <- h.w.Shutdown(context.Background()) }()
	<-h.w.loopsCtx.Done() // Shutdown has begun
	h.capturer.release(false)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if calls := h.capturer.returnedCalls(); len(calls) != 1 || calls[0].ctxErr != nil {
		t.Errorf("trigger calls = %+v, want one that finished with a live context", calls)
	}
}

func TestShutdownCancelsRunningTriggersWhenItsContextEnds(t *testing.T) {
	h := newHarness(t, nil)
	h.capturer.release(true)
	h.source.set(map[string]PodUsage{"web-1": sample("web-1", "930m", "")}, nil)
	h.w.Sync(grp, policy(), []Target{target(hotPod("web-1"))})
	h.start(t)
	h.check(t)
	eventually(t, "the trigger to start", func() bool { return h.capturer.enteredCount() == 1 })

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := h.w.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown = %v, want an error saying triggers were cancelled", err)
	}
	if calls := h.capturer.returnedCalls(); len(calls) != 1 || !errors.Is(calls[0].ctxErr, errShutdown) {
		t.Errorf("trigger calls = %+v, want one cancelled by the shutdown", calls)
	}
}

func TestLifecycle(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name string
		run  func(t *testing.T, h *harness)
	}{
		{"Shutdown without Start succeeds, twice", func(t *testing.T, h *harness) {
			for range 2 {
				if err := h.w.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			}
		}},
		{"Shutdown after Start is idempotent", func(t *testing.T, h *harness) {
			h.w.Sync(grp, policy(), nil)
			h.start(t)
			for range 2 {
				if err := h.w.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			}
		}},
		{"Start after Shutdown fails", func(t *testing.T, h *harness) {
			_ = h.w.Shutdown(context.Background())
			if err := h.w.Start(context.Background()); err == nil {
				t.Error("Start after Shutdown succeeded")
			}
		}},
		{"Start twice fails", func(t *testing.T, h *harness) {
			h.w.Sync(grp, policy(), nil)
			h.start(t)
			if err := h.w.Start(context.Background()); err == nil {
				t.Error("second Start succeeded")
			}
		}},
		{"Start with a cancelled context fails", func(t *testing.T, h *harness) {
			if err := h.w.Start(cancelled); !errors.Is(err, context.Canceled) {
				t.Errorf("Start = %v, want context.Canceled", err)
			}
		}},
		{"Start does not keep its context", func(t *testing.T, h *harness) {
			ctx, cancel := context.WithCancel(context.Background())
			h.w.Sync(grp, policy(), nil)
			if err := h.w.Start(ctx); err != nil {
				t.Fatalf("Start: %v", err)
			}
			cancel()
			h.clock.waitArmed(t, 1)
			h.check(t) // still checking
			if got := h.source.callCount(); got != 1 {
				t.Errorf("%d usage reads, want 1", got)
			}
		}},
		{"a group synced after Start is checked", func(t *testing.T, h *harness) {
			if err := h.w.Start(context.Background()); err != nil {
				t.Fatalf("Start: %v", err)
			}
			h.w.Sync(grp, policy(), nil)
			h.clock.waitArmed(t, 1)
			h.check(t)
			if got := h.source.callCount(); got != 1 {
				t.Errorf("%d usage reads, want 1", got)
			}
		}},
		{"a Sync after Shutdown is ignored", func(t *testing.T, h *harness) {
			_ = h.w.Shutdown(context.Background())
			h.w.Sync(grp, policy(), nil)
			if len(h.w.groups) != 0 {
				t.Errorf("groups = %v, want none", h.w.groups)
			}
		}},
		{"a Sync with an invalid policy is ignored", func(t *testing.T, h *harness) {
			p := policy()
			p.CheckInterval = 0
			h.w.Sync(grp, p, nil)
			if len(h.w.groups) != 0 {
				t.Errorf("groups = %v, want none", h.w.groups)
			}
		}},
		{"targets without an ID or a pod are skipped", func(t *testing.T, h *harness) {
			h.w.Sync(grp, policy(), []Target{{ID: "x"}, {Pod: hotPod("web-1")}, target(hotPod("web-2"))})
			if got := len(h.w.groups[grp].targets); got != 1 {
				t.Errorf("%d targets kept, want 1", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.source.set(map[string]PodUsage{}, nil)
			tt.run(t, h)
		})
	}
}

func TestPodUsageFromAnotherPodIsIgnored(t *testing.T) {
	tests := []struct {
		name  string
		usage PodUsage
	}{
		{"a sample from another namespace is ignored", func() PodUsage {
			u := sample("web-1", "930m", "")
			u.Namespace = "other"
			return u
		}()},
		{"a sample older than the pod, from a predecessor of the same name, is ignored", sample("web-1", "930m", "")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, nil)
			pod := hotPod("web-1")
			pod.CreationTimestamp.Time = tt.usage.Timestamp.Add(time.Second)
			if tt.usage.Namespace == "other" {
				pod.CreationTimestamp.Time = time.Time{}
			}
			h.source.set(map[string]PodUsage{"web-1": tt.usage}, nil)
			h.w.Sync(grp, policy(), []Target{target(pod)})
			h.start(t)
			h.check(t)
			if got := h.journal.snapshot(); len(got) != 0 {
				t.Errorf("calls = %q, want none", got)
			}
		})
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() Config {
		return Config{Source: &fakeSource{}, Capturer: &fakeCapturer{}, Cooldowns: &fakeCooldowns{}}
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantErr string
	}{
		{"a config with its three parts is valid and gets defaults", func(*Config) {}, ""},
		{"a missing Source is named", func(c *Config) { c.Source = nil }, "Source is required"},
		{"a missing Capturer is named", func(c *Config) { c.Capturer = nil }, "Capturer is required"},
		{"a missing Cooldowns is named", func(c *Config) { c.Cooldowns = nil }, "Cooldowns is required"},
		{"a Jitter of 1 is rejected", func(c *Config) { c.Jitter = 1 }, "Jitter"},
		{"a negative MaxInFlight is rejected", func(c *Config) { c.MaxInFlight = -1 }, "MaxInFlight"},
		{"a negative RecordTimeout is rejected", func(c *Config) { c.RecordTimeout = -time.Second }, "RecordTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := valid()
			tt.mutate(&c)
			c.SetDefaults()
			err := c.Validate()
			checkErr(t, err, tt.wantErr)
			if err == nil && (c.Jitter != DefaultJitter || c.MaxInFlight != DefaultMaxInFlight ||
				c.RecordTimeout != DefaultRecordTimeout || c.Now == nil || c.Reporter == nil) {
				t.Errorf("defaults not applied: %+v", c)
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*Policy)
		wantErr string
	}{
		{"a complete policy is valid", func(*Policy) {}, ""},
		{"a nil selector is valid and means every pod", func(p *Policy) { p.Selector = nil }, ""},
		{"a zero CheckInterval is named", func(p *Policy) { p.CheckInterval = 0 }, "CheckInterval"},
		{"a bad rule is named", func(p *Policy) { p.Rule.Basis = "Usage" }, "Basis"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policy()
			tt.mutate(&p)
			checkErr(t, p.Validate(), tt.wantErr)
		})
	}
}

// The interfaces are satisfied by the fakes used above.
var (
	_ Source        = (*fakeSource)(nil)
	_ Capturer      = (*fakeCapturer)(nil)
	_ CooldownStore = (*fakeCooldowns)(nil)
	_ Reporter      = (*fakeReporter)(nil)
)
