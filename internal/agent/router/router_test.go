package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/agent/profile"
)

// waitDeadline is generous: it only bounds a test that would otherwise hang.
const waitDeadline = 20 * time.Second

// recorder records what it consumes and, when notify is set, signals each event.
type recorder struct {
	name string
	// consume, when set, decides Consume's result after the event is recorded.
	consume func(ctx context.Context, ev *profile.Event) error
	// shutdownErr is returned by Shutdown.
	shutdownErr error
	notify      chan *profile.Event

	mu        sync.Mutex
	got       []string // event configs, then "shutdown"
	shutdowns int
}

var _ Consumer = (*recorder)(nil)

func (r *recorder) Name() string { return r.name }

func (r *recorder) Consume(ctx context.Context, ev *profile.Event) error {
	r.mu.Lock()
	r.got = append(r.got, ev.Config)
	r.mu.Unlock()
	if r.notify != nil {
		r.notify <- ev
	}
	if r.consume != nil {
		return r.consume(ctx, ev)
	}
	return nil
}

func (r *recorder) Shutdown(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, "shutdown")
	r.shutdowns++
	return r.shutdownErr
}

func (r *recorder) events() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func event(i int) *profile.Event { return &profile.Event{Config: fmt.Sprintf("ev%d", i)} }

func eventNames(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("ev%d", i))
	}
	return out
}

type harness struct {
	t       *testing.T
	r       *Fanout[*profile.Event]
	metrics *Metrics
}

func newHarness(t *testing.T, queueSize int, consumers ...Consumer) *harness {
	t.Helper()
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{
		QueueSize: queueSize,
		Logger:    slog.New(slog.NewTextHandler(t.Output(), nil)),
		Metrics:   m,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range consumers {
		if err := r.Register(c); err != nil {
			t.Fatal(err)
		}
	}
	return &harness{t: t, r: r, metrics: m}
}

func (h *harness) start() {
	h.t.Helper()
	if err := h.r.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

// counts returns delivered, failed, dropped from the Prometheus counters,
// checking that Stats agrees.
func (h *harness) counts(name string) (delivered, failed, dropped uint64) {
	h.t.Helper()
	get := func(result string) uint64 {
		return uint64(testutil.ToFloat64(h.metrics.events.WithLabelValues(name, result)))
	}
	delivered, failed, dropped = get(ResultDelivered), get(ResultFailed), get(ResultDropped)
	s := h.r.Stats()[name]
	if s.Delivered != delivered || s.Failed != failed || s.Dropped != dropped {
		h.t.Errorf("%s: Stats %+v disagree with metrics delivered=%d failed=%d dropped=%d", name, s, delivered, failed, dropped)
	}
	return delivered, failed, dropped
}

func (h *harness) wantCounts(name string, delivered, failed, dropped uint64) {
	h.t.Helper()
	d, f, x := h.counts(name)
	if d != delivered || f != failed || x != dropped {
		h.t.Errorf("%s: delivered=%d failed=%d dropped=%d, want %d %d %d", name, d, f, x, delivered, failed, dropped)
	}
	if q := testutil.ToFloat64(h.metrics.queueLength.WithLabelValues(name)); q != 0 {
		h.t.Errorf("%s: queue length %v after shutdown, want 0", name, q)
	}
}

func receive(t *testing.T, ch <-chan *profile.Event, want string) {
	t.Helper()
	select {
	case ev := <-ch:
		if ev.Config != want {
			t.Fatalf("received %s, want %s", ev.Config, want)
		}
	case <-time.After(waitDeadline):
		t.Fatalf("%s not received within %s", want, waitDeadline)
	}
}

// publish fails the test when Publish does not return: it must never block.
func publish(t *testing.T, r *Fanout[*profile.Event], ev *profile.Event) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		r.Publish(ev)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitDeadline):
		t.Fatalf("Publish(%s) blocked for %s", ev.Config, waitDeadline)
	}
}

func TestEveryConsumerGetsEveryEventInOrder(t *testing.T) {
	const n = 200
	a, b, c := &recorder{name: "a"}, &recorder{name: "b"}, &recorder{name: "c"}
	h := newHarness(t, n, a, b, c)
	h.start()
	for i := range n {
		h.r.Publish(event(i))
	}
	if err := h.r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := append(eventNames(0, n), "shutdown")
	for _, rec := range []*recorder{a, b, c} {
		if got := rec.events(); !slices.Equal(got, want) {
			t.Errorf("%s got %d events %v..., want %d in order then shutdown", rec.name, len(got), got[:min(5, len(got))], n)
		}
		h.wantCounts(rec.name, n, 0, 0)
	}
}

func TestABlockedConsumerDropsOnlyItsOwnEvents(t *testing.T) {
	for _, tc := range []struct {
		name      string
		queueSize int
		events    int
	}{
		{"with the default queue", 0, 100},
		{"with a queue of one", 1, 10},
		{"with a queue as long as the events", 50, 50},
	} {
		t.Run(tc.name, func(t *testing.T) {
			queueSize := tc.queueSize
			if queueSize == 0 {
				queueSize = DefaultQueueSize
			}
			release := make(chan struct{})
			entered := make(chan *profile.Event, 1)
			blocked := &recorder{name: "blocked", notify: entered, consume: func(ctx context.Context, _ *profile.Event) error {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil
			}}
			fast1 := &recorder{name: "fast1", notify: make(chan *profile.Event, 1)}
			fast2 := &recorder{name: "fast2", notify: make(chan *profile.Event, 1)}
			h := newHarness(t, tc.queueSize, blocked, fast1, fast2)
			h.start()

			publish(t, h.r, event(0))
			receive(t, entered, "ev0") // in flight from now on
			receive(t, fast1.notify, "ev0")
			receive(t, fast2.notify, "ev0")
			for i := 1; i < tc.events; i++ {
				publish(t, h.r, event(i))
				// The others get each event while the blocked one still holds ev0.
				receive(t, fast1.notify, fmt.Sprintf("ev%d", i))
				receive(t, fast2.notify, fmt.Sprintf("ev%d", i))
			}
			// One in flight, queueSize queued, the rest dropped.
			wantDropped := uint64(max(0, tc.events-1-queueSize))
			if _, _, dropped := h.counts("blocked"); dropped != wantDropped {
				t.Errorf("blocked consumer dropped %d, want %d", dropped, wantDropped)
			}
			if q := h.r.Stats()["blocked"].Queued; q != min(queueSize, tc.events-1) {
				t.Errorf("blocked consumer has %d queued, want %d", q, min(queueSize, tc.events-1))
			}

			close(release)
			go func() { // drain notifications of the released consumer
				for range entered {
				}
			}()
			if err := h.r.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			close(entered)
			delivered := uint64(min(tc.events, queueSize+1))
			h.wantCounts("blocked", delivered, 0, wantDropped)
			if got, want := blocked.events(), append(eventNames(0, int(delivered)), "shutdown"); !slices.Equal(got, want) {
				t.Errorf("blocked consumer got %v, want %v", got, want)
			}
			for _, name := range []string{"fast1", "fast2"} {
				h.wantCounts(name, uint64(tc.events), 0, 0)
			}
		})
	}
}

func TestAFailingConsumerIsCountedAndDoesNotAffectOthers(t *testing.T) {
	const n = 30
	failing := &recorder{name: "failing", consume: func(_ context.Context, ev *profile.Event) error {
		return fmt.Errorf("cannot store %s", ev.Config)
	}}
	panicking := &recorder{name: "panicking", consume: func(_ context.Context, ev *profile.Event) error {
		if ev.Config == "ev3" {
			panic("boom")
		}
		return nil
	}}
	ok := &recorder{name: "ok"}
	h := newHarness(t, n, failing, panicking, ok)
	h.start()
	for i := range n {
		h.r.Publish(event(i))
	}
	if err := h.r.Shutdown(context.Background()); err != nil {
		t.Fatalf("consume failures are counted, not returned by Shutdown: %v", err)
	}
	h.wantCounts("failing", 0, n, 0)
	h.wantCounts("panicking", n-1, 1, 0)
	h.wantCounts("ok", n, 0, 0)
	want := append(eventNames(0, n), "shutdown")
	for _, rec := range []*recorder{failing, panicking, ok} {
		if got := rec.events(); !slices.Equal(got, want) {
			t.Errorf("%s got %v, want every event then shutdown", rec.name, got)
		}
	}
}

func TestShutdownJoinsErrorsAndIsIdempotent(t *testing.T) {
	errA, errB := errors.New("flush a failed"), errors.New("close b failed")
	a := &recorder{name: "a", shutdownErr: errA}
	b := &recorder{name: "b", shutdownErr: errB}
	c := &recorder{name: "c"}
	h := newHarness(t, 0, a, b, c)
	h.start()
	h.r.Publish(event(0))
	err := h.r.Shutdown(context.Background())
	if !errors.Is(err, errA) || !errors.Is(err, errB) {
		t.Fatalf("Shutdown = %v, want both consumers' errors", err)
	}
	for _, w := range []string{`consumer "a": shutdown: flush a failed`, `consumer "b": shutdown: close b failed`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("Shutdown error %q does not contain %q", err, w)
		}
	}
	if again := h.r.Shutdown(context.Background()); again == nil || again.Error() != err.Error() {
		t.Errorf("second Shutdown = %v, want the first's result", again)
	}
	for _, rec := range []*recorder{a, b, c} {
		if rec.shutdowns != 1 {
			t.Errorf("%s shut down %d times, want 1", rec.name, rec.shutdowns)
		}
	}
	// Publishing after Shutdown drops, counted, and does not panic.
	h.r.Publish(event(1))
	h.wantCounts("c", 1, 0, 1)
}

func TestShutdownAtTheDeadlineCancelsAndCountsWhatIsLeft(t *testing.T) {
	entered := make(chan *profile.Event, 1)
	stuck := &recorder{name: "stuck", notify: entered, consume: func(ctx context.Context, _ *profile.Event) error {
		<-ctx.Done() // honours cancellation, nothing else
		return ctx.Err()
	}}
	h := newHarness(t, 0, stuck)
	h.start()
	for i := range 4 {
		h.r.Publish(event(i))
	}
	receive(t, entered, "ev0")

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the deadline has passed already
	err := h.r.Shutdown(ctx)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), `consumer "stuck": 3 events not delivered`) {
		t.Fatalf("Shutdown = %v, want the stuck consumer's 3 undelivered events and context.Canceled", err)
	}
	h.wantCounts("stuck", 0, 1, 3)
	if got, want := stuck.events(), []string{"ev0", "shutdown"}; !slices.Equal(got, want) {
		t.Errorf("stuck consumer got %v, want %v", got, want)
	}
}

func TestLifecycleRules(t *testing.T) {
	t.Run("Shutdown without Start shuts consumers down and drops what was published", func(t *testing.T) {
		a := &recorder{name: "a"}
		h := newHarness(t, 0, a)
		h.r.Publish(event(0))
		h.r.Publish(event(1))
		if err := h.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := a.events(); !slices.Equal(got, []string{"shutdown"}) {
			t.Errorf("consumer got %v, want only shutdown", got)
		}
		h.wantCounts("a", 0, 0, 2)
		if err := h.r.Shutdown(context.Background()); err != nil {
			t.Errorf("second Shutdown: %v", err)
		}
		if err := h.r.Start(context.Background()); err == nil {
			t.Error("Start after Shutdown succeeded")
		}
	})
	t.Run("a router without consumers starts and shuts down", func(t *testing.T) {
		h := newHarness(t, 0)
		h.start()
		h.r.Publish(event(0))
		if err := h.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("events published before Start are delivered after it", func(t *testing.T) {
		a := &recorder{name: "a"}
		h := newHarness(t, 0, a)
		h.r.Publish(event(0))
		h.start()
		if err := h.r.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		h.wantCounts("a", 1, 0, 0)
	})
	for _, tc := range []struct {
		name string
		do   func(r *Fanout[*profile.Event]) error
		want string
	}{
		{"Register after Start is an error", func(r *Fanout[*profile.Event]) error {
			if err := r.Start(context.Background()); err != nil {
				return err
			}
			return r.Register(&recorder{name: "late"})
		}, `register "late": router already started`},
		{"Register after Shutdown is an error", func(r *Fanout[*profile.Event]) error {
			if err := r.Shutdown(context.Background()); err != nil {
				return err
			}
			return r.Register(&recorder{name: "late"})
		}, `register "late": router is shut down`},
		{"a duplicate name is an error", func(r *Fanout[*profile.Event]) error {
			return r.Register(&recorder{name: "a"})
		}, `register "a": a consumer of that name is registered`},
		{"a nameless consumer is an error", func(r *Fanout[*profile.Event]) error {
			return r.Register(&recorder{})
		}, "consumer has no name"},
		{"a nil consumer is an error", func(r *Fanout[*profile.Event]) error {
			return r.Register(nil)
		}, "nil consumer"},
		{"Start twice is an error", func(r *Fanout[*profile.Event]) error {
			if err := r.Start(context.Background()); err != nil {
				return err
			}
			return r.Start(context.Background())
		}, "already started"},
		{"Start with a done context is an error", func(r *Fanout[*profile.Event]) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return r.Start(ctx)
		}, "context canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, 0, &recorder{name: "a"})
			t.Cleanup(func() { _ = h.r.Shutdown(context.Background()) })
			if err := tc.do(h.r); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestStartDoesNotKeepItsContext(t *testing.T) {
	a := &recorder{name: "a", notify: make(chan *profile.Event, 1)}
	h := newHarness(t, 0, a)
	ctx, cancel := context.WithCancel(context.Background())
	if err := h.r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	cancel()
	h.r.Publish(event(0))
	receive(t, a.notify, "ev0")
	if err := h.r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.wantCounts("a", 1, 0, 0)
}

func TestEveryEventIsCountedOnceUnderConcurrentPublishAndShutdown(t *testing.T) {
	const publishers, perPublisher = 4, 500
	slow := &recorder{name: "slow", consume: func(context.Context, *profile.Event) error {
		time.Sleep(10 * time.Microsecond) // slower than publishing: it must drop
		return nil
	}}
	fast := &recorder{name: "fast"}
	h := newHarness(t, 8, slow, fast)
	h.start()
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range perPublisher {
				h.r.Publish(event(p*perPublisher + i))
			}
		})
	}
	if err := h.r.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, name := range []string{"slow", "fast"} {
		d, f, x := h.counts(name)
		if d+f+x != publishers*perPublisher {
			t.Errorf("%s: delivered %d + failed %d + dropped %d != %d published", name, d, f, x, publishers*perPublisher)
		}
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"a negative QueueSize is named", Config{QueueSize: -1}, "QueueSize: must be from 1 to 65536, got -1"},
		{"a huge QueueSize is named", Config{QueueSize: MaxQueueSize + 1}, "QueueSize: must be from 1 to 65536"},
		{"a negative LogInterval is named", Config{LogInterval: -time.Second}, "LogInterval: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, want an error containing %q", err, tc.want)
			}
		})
	}
	var cfg Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil || cfg.QueueSize != DefaultQueueSize || cfg.LogInterval != DefaultLogInterval || cfg.Logger == nil || cfg.Metrics == nil {
		t.Fatalf("Validate() = %v with %+v, want the defaults", err, cfg)
	}
}

func TestNewMetricsRegistersTheDocumentedNames(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(Config{Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Register(&recorder{name: "perfdata"}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP kprof_agent_router_queue_length Profile events waiting in a consumer's queue.
# TYPE kprof_agent_router_queue_length gauge
kprof_agent_router_queue_length{consumer="perfdata"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "kprof_agent_router_queue_length"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "kprof_agent_router_events_total"); err != nil || n != 3 {
		t.Errorf("kprof_agent_router_events_total has %d series (%v), want delivered, failed and dropped at 0", n, err)
	}
	if _, err := NewMetrics(reg); err == nil {
		t.Error("registering the metrics twice succeeded")
	}
	_ = r.Shutdown(context.Background())
}
