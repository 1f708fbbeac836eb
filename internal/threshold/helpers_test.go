package threshold

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kprof/kprof/internal/logging/logtest"
)

// waitTimeout bounds every wait for a condition. It is a safety net against a
// hung test, never an assertion about speed.
const waitTimeout = 30 * time.Second

// eventually waits until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// fakeClock is the watcher's clock and timer: Now returns a time the test sets,
// and a check runs only when the test fires the pending timers.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	pending []chan time.Time
	delays  []time.Duration // every delay asked for, in order
	changed chan struct{}   // closed and replaced when a timer is armed
}

func newFakeClock(now time.Time) *fakeClock {
	return &fakeClock{now: now, changed: make(chan struct{})}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) set(now time.Time) {
	c.mu.Lock()
	c.now = now
	c.mu.Unlock()
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, ch)
	c.delays = append(c.delays, d)
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

func (c *fakeClock) armed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.delays)
}

func (c *fakeClock) askedDelays() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.delays...)
}

// waitArmed waits until n timers have been armed in total.
func (c *fakeClock) waitArmed(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, ch := len(c.delays), c.changed
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("gave up waiting for timer %d to be armed (armed so far: %d)", n, got)
		}
	}
}

// fire fires every pending timer and returns how many timers were armed before.
func (c *fakeClock) fire() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range c.pending {
		ch <- c.now
	}
	c.pending = nil
	return len(c.delays)
}

// fakeSource serves usage set by the test, or fails with err.
type fakeSource struct {
	mu    sync.Mutex
	usage map[string]PodUsage
	err   error
	calls int
	last  struct {
		namespace string
		selector  string
	}
}

func (s *fakeSource) PodUsage(ctx context.Context, namespace string, selector labels.Selector) (map[string]PodUsage, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	s.last.namespace, s.last.selector = namespace, selector.String()
	if s.err != nil {
		return nil, s.err
	}
	return maps.Clone(s.usage), nil
}

func (s *fakeSource) set(usage map[string]PodUsage, err error) {
	s.mu.Lock()
	s.usage, s.err = usage, err
	s.mu.Unlock()
}

func (s *fakeSource) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

// journal records the order of Records and Triggers across fakes.
type journal struct {
	mu      sync.Mutex
	entries []string
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.entries = append(j.entries, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

func (j *journal) snapshot() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.entries...)
}

type triggerCall struct {
	group, targetID, reason string
	ctxErr                  error // the context's cause when Trigger returned, nil if still live
}

// fakeCapturer records Trigger calls; when block is set, Trigger waits for it
// to close or for its context to end.
type fakeCapturer struct {
	journal *journal
	block   chan struct{}

	mu       sync.Mutex
	entered  int
	returned []triggerCall
}

func (c *fakeCapturer) Trigger(ctx context.Context, group string, t Target, cr Crossing, _ time.Time) error {
	targetID, reason := t.ID, cr.Reason()
	c.journal.add("trigger %s %s %s", group, targetID, reason)
	c.mu.Lock()
	c.entered++
	block := c.block
	c.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
		}
	}
	var cause error
	if ctx.Err() != nil {
		cause = context.Cause(ctx)
	}
	c.mu.Lock()
	c.returned = append(c.returned, triggerCall{group, targetID, reason, cause})
	c.mu.Unlock()
	return cause
}

// release unblocks the Trigger calls waiting so far; with again, the next ones block.
func (c *fakeCapturer) release(again bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.block != nil {
		close(c.block)
		c.block = nil
	}
	if again {
		c.block = make(chan struct{})
	}
}

func (c *fakeCapturer) enteredCount() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entered
}

func (c *fakeCapturer) returnedCalls() []triggerCall {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]triggerCall(nil), c.returned...)
}

type recordCall struct {
	group  string
	pod    string
	at     time.Time
	reason string
}

// fakeCooldowns keeps triggers in memory. With blind set, LastTrigger never
// sees a Record, like a cache that has not caught up.
type fakeCooldowns struct {
	journal *journal

	mu      sync.Mutex
	last    map[types.UID]time.Time
	records []recordCall
	err     error
	blind   bool
}

func (s *fakeCooldowns) LastTrigger(group string, uid types.UID) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[uid]
}

func (s *fakeCooldowns) Record(ctx context.Context, group string, pod *corev1.Pod, at time.Time, reason string) error {
	s.journal.add("record %s %s %s", group, pod.UID, reason)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err != nil {
		return s.err
	}
	s.records = append(s.records, recordCall{group, pod.Name, at, reason})
	if !s.blind {
		if s.last == nil {
			s.last = make(map[types.UID]time.Time)
		}
		s.last[pod.UID] = at
	}
	return nil
}

func (s *fakeCooldowns) setErr(err error) {
	s.mu.Lock()
	s.err = err
	s.mu.Unlock()
}

func (s *fakeCooldowns) recorded() []recordCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]recordCall(nil), s.records...)
}

type uncomputableReport struct {
	pod      string
	problems []string
}

type triggeredReport struct {
	pod      string
	crossing Crossing
	latency  Latency
}

// fakeReporter records every report.
type fakeReporter struct {
	mu           sync.Mutex
	unavailable  []error
	uncomputable []uncomputableReport
	triggered    []triggeredReport
}

func (r *fakeReporter) MetricsUnavailable(group string, err error) {
	r.mu.Lock()
	r.unavailable = append(r.unavailable, err)
	r.mu.Unlock()
}

func (r *fakeReporter) Uncomputable(group string, pod *corev1.Pod, problems []string) {
	r.mu.Lock()
	r.uncomputable = append(r.uncomputable, uncomputableReport{pod.Name, problems})
	r.mu.Unlock()
}

func (r *fakeReporter) Triggered(group string, pod *corev1.Pod, c Crossing, l Latency) {
	r.mu.Lock()
	r.triggered = append(r.triggered, triggeredReport{pod.Name, c, l})
	r.mu.Unlock()
}

func (r *fakeReporter) snapshot() (unavailable []error, uncomputable []uncomputableReport, triggered []triggeredReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]error(nil), r.unavailable...),
		append([]uncomputableReport(nil), r.uncomputable...),
		append([]triggeredReport(nil), r.triggered...)
}

// harness is a watcher wired to fakes.
type harness struct {
	w        *Watcher
	clock    *fakeClock
	source   *fakeSource
	capturer *fakeCapturer
	store    *fakeCooldowns
	reporter *fakeReporter
	journal  *journal
	metrics  *Metrics
}

func newHarness(t *testing.T, mutate func(*Config)) *harness {
	t.Helper()
	j := &journal{}
	h := &harness{
		clock:    newFakeClock(t0),
		source:   &fakeSource{},
		capturer: &fakeCapturer{journal: j},
		store:    &fakeCooldowns{journal: j},
		reporter: &fakeReporter{},
		journal:  j,
	}
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	h.metrics = m
	cfg := Config{
		Source:    h.source,
		Capturer:  h.capturer,
		Cooldowns: h.store,
		Reporter:  h.reporter,
		Logger:    logtest.New(t),
		Now:       h.clock.Now,
		Metrics:   m,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	w.after = h.clock.After
	h.w = w
	t.Cleanup(func() {
		h.capturer.release(false)
		if err := w.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return h
}

// start starts the watcher and waits for the first check of one group to be scheduled.
func (h *harness) start(t *testing.T) {
	t.Helper()
	if err := h.w.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	h.clock.waitArmed(t, 1)
}

// check fires the pending timer of the (single) group and waits until its check
// is done, which is when the loop arms the next timer.
func (h *harness) check(t *testing.T) {
	t.Helper()
	n := h.clock.fire()
	h.clock.waitArmed(t, n+1)
}

// idle waits until no Trigger call of group is outstanding.
func (h *harness) idle(t *testing.T, group string) {
	t.Helper()
	eventually(t, "no outstanding triggers", func() bool {
		h.w.mu.Lock()
		g := h.w.groups[group]
		h.w.mu.Unlock()
		return g == nil || g.outstandingTriggers() == 0
	})
}

// hotPod is a single-container pod with a 1-CPU, 1Gi request.
func hotPod(name string) *corev1.Pod {
	return podOf(name, ctr("app", res("1", "1Gi"), nil))
}

func target(p *corev1.Pod) Target { return Target{ID: string(p.UID), Pod: p} }

// sample is usage of a single "app" container taken at t0-20s.
func sample(pod, cpu, mem string) PodUsage {
	return PodUsage{Namespace: "ns", Name: pod, Timestamp: t0.Add(-20 * time.Second), Window: 15 * time.Second,
		Containers: []ContainerUsage{use("app", cpu, mem)}}
}

func policy() Policy {
	return Policy{
		Namespace:     "ns",
		Selector:      labels.SelectorFromSet(labels.Set{"app": "web"}),
		Rule:          Rule{CPUPercent: 80, MemoryPercent: 90, Cooldown: 5 * time.Minute},
		CheckInterval: 30 * time.Second,
	}
}
