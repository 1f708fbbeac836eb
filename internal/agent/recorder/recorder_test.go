package recorder

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

func TestIdenticalStacksOfAPodAddUpAndOtherSamplesAreLeftOut(t *testing.T) {
	r, c, _ := testRecorder(t, Config{})
	hot, cold := stackOf("main.hot", "main.main"), stackOf("main.cold", "main.main")
	c.set(at(1))
	err := r.Consume(t.Context(), event("cpu", t0, time.Second,
		sample("shop", "web-0", 10, 10, 3, hot),
		sample("shop", "web-0", 10, 11, 4, hot), // another thread, same stack
		sample("shop", "web-0", 10, 10, 2, cold),
		sample("shop", "web-1", 20, 20, 5, hot), // another pod
		sample("", "", 30, 30, 7, hot),          // a host process
	))
	if err != nil {
		t.Fatal(err)
	}
	// Not time-based: ignored.
	pf := event("faults", t0, time.Second, sample("shop", "web-0", 10, 10, 99, hot))
	pf.EventName = "page-faults"
	if err := r.Consume(t.Context(), pf); err != nil {
		t.Fatal(err)
	}

	ev, w, err := r.Query("shop", "web-0", t0, at(1))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Samples) != 2 || total(ev) != 9 {
		t.Fatalf("web-0 has %d samples totalling %d, want 2 stacks totalling 9: %+v", len(ev.Samples), total(ev), ev.Samples)
	}
	if got := ev.Samples[0]; got.Count != 7 || got.CPUTime != 70*time.Millisecond || got.Frames[1].Function != "main.hot" || got.PID != 10 || got.TID != 0 {
		t.Errorf("hot stack = %+v, want the two threads' 7 samples (70ms) under pid 10", got)
	}
	if !w.Start.Equal(t0) || !w.End.Equal(at(1)) {
		t.Errorf("window %v, want [t0, t0+1s]", w)
	}
	want := map[string]string{"namespace": "shop", "pod": "web-0", "node": "node-a"}
	for k, v := range want {
		if ev.Labels[k] != v {
			t.Errorf("event label %s = %q, want %q", k, ev.Labels[k], v)
		}
	}
	if l := ev.Samples[0].Labels; l["comm"] != "server" || l["container"] != "app" || len(l) != 2 {
		t.Errorf("sample labels %v, want comm and container only", l)
	}
	if ev.Config != "cpu" || ev.EventName != "cpu-clock" || ev.Frequency != 100 {
		t.Errorf("event %s %s %d Hz, want cpu cpu-clock 100 Hz", ev.Config, ev.EventName, ev.Frequency)
	}
	if ev, _, _ := r.Query("shop", "web-1", t0, at(1)); total(ev) != 5 {
		t.Errorf("web-1 has %d samples, want 5", total(ev))
	}
}

func TestAStackIsStoredOnceAcrossBucketsAndItsBytesFreedWithTheLast(t *testing.T) {
	r, c, reg := testRecorder(t, Config{Window: 10 * time.Second, PinTTL: time.Second})
	hot := stackOf("main.hot", "main.main")
	feed(t, r, c, 0, 8, func(int) []profile.Sample {
		return []profile.Sample{sample("shop", "web-0", 10, 10, 1, stackOf("main.hot", "main.main"))}
	})
	r.mu.Lock()
	stacks, buckets := len(r.store.stacks), len(r.store.buckets)
	r.mu.Unlock()
	if stacks != 1 || buckets != 8 {
		t.Errorf("%d stacks in %d buckets, want 1 stack shared by 8", stacks, buckets)
	}
	if got := gauge(t, reg, "kprof_agent_recorder_pods"); got != 1 {
		t.Errorf("kprof_agent_recorder_pods = %v, want 1", got)
	}
	// The recorder keeps copies: changing the event's frames changes nothing.
	hot[1].Function = "changed"
	ev, _, err := r.Query("shop", "web-0", t0, at(8))
	if err != nil {
		t.Fatal(err)
	}
	if total(ev) != 8 || ev.Samples[0].Frames[1].Function != "main.hot" {
		t.Errorf("query: %d samples, leaf function %q; want 8 of main.hot", total(ev), ev.Samples[0].Frames[1].Function)
	}
	// Long after: everything expired, the byte count is back to nothing.
	c.set(at(3600))
	if err := r.Consume(t.Context(), event("cpu", at(3599), time.Second)); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.store.stacks) != 0 || len(r.store.buckets) != 0 || len(r.store.pods) != 0 {
		t.Errorf("after expiry: %d stacks, %d buckets, %d pods; want none", len(r.store.stacks), len(r.store.buckets), len(r.store.pods))
	}
	if want := intervalBytes(r.store.intervals[0]); len(r.store.intervals) != 1 || r.store.bytes != want {
		t.Errorf("after expiry: %d bytes for %d intervals, want %d for the last one", r.store.bytes, len(r.store.intervals), want)
	}
}

func TestTheWindowKeepsTheLastSecondsAtBucketResolution(t *testing.T) {
	r, c, _ := testRecorder(t, Config{Window: 30 * time.Second})
	feed(t, r, c, 0, 60, func(sec int) []profile.Sample {
		return []profile.Sample{sample("shop", "web-0", 10, 10, uint64(sec+1), stackOf("main.hot"))}
	})
	// now = t0+60s: the buckets ending after t0+30s are kept.
	t.Run("a window inside the kept seconds is widened to whole buckets", func(t *testing.T) {
		ev, w, err := r.Query("shop", "web-0", at(40.5), at(42.2))
		if err != nil {
			t.Fatal(err)
		}
		if !w.Start.Equal(at(40)) || !w.End.Equal(at(43)) {
			t.Errorf("window [%s, %s], want [40s, 43s]", w.Start.Sub(t0), w.End.Sub(t0))
		}
		if want := uint64(41 + 42 + 43); total(ev) != want {
			t.Errorf("%d samples, want %d (seconds 40, 41, 42)", total(ev), want)
		}
		if !ev.Start.Equal(w.Start) || !ev.End.Equal(w.End) {
			t.Errorf("event [%s, %s] differs from the window", ev.Start, ev.End)
		}
	})
	t.Run("a window reaching before the kept seconds starts where they do", func(t *testing.T) {
		_, w, err := r.Query("shop", "web-0", at(10), at(35))
		if err != nil {
			t.Fatal(err)
		}
		if !w.Start.Equal(at(30)) || !w.End.Equal(at(35)) {
			t.Errorf("window [%s, %s], want [30s, 35s]", w.Start.Sub(t0), w.End.Sub(t0))
		}
	})
	t.Run("a window of expired seconds is not recorded", func(t *testing.T) {
		_, _, err := r.Query("shop", "web-0", at(5), at(20))
		if !errors.Is(err, ErrNotRecorded) || !strings.Contains(err.Error(), "holds 2026-03-01T12:00:30Z to 2026-03-01T12:01:00Z") {
			t.Errorf("err = %v, want ErrNotRecorded saying what is held", err)
		}
	})
	t.Run("a pod that used no CPU gets an empty profile of the window", func(t *testing.T) {
		ev, w, err := r.Query("shop", "idle-0", at(50), at(55))
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Samples) != 0 || !w.Start.Equal(at(50)) || !w.End.Equal(at(55)) {
			t.Errorf("%d samples over [%s, %s], want none over [50s, 55s]", len(ev.Samples), w.Start.Sub(t0), w.End.Sub(t0))
		}
	})
	t.Run("a bad range is an error", func(t *testing.T) {
		if _, _, err := r.Query("shop", "web-0", at(50), at(50)); err == nil || errors.Is(err, ErrNotRecorded) {
			t.Errorf("err = %v, want a bad range", err)
		}
	})
}

func TestAPinKeepsAPodPastTheWindowUntilFetchedOrExpired(t *testing.T) {
	r, c, reg := testRecorder(t, Config{Window: 10 * time.Second, PinTTL: time.Minute})
	samples := func(int) []profile.Sample {
		return []profile.Sample{
			sample("shop", "web-0", 10, 10, 1, stackOf("main.hot")),
			sample("shop", "web-1", 20, 20, 1, stackOf("main.hot")),
		}
	}
	feed(t, r, c, 0, 10, samples)
	r.Pin("shop", "web-0", at(5))
	var nilRecorder *Recorder
	nilRecorder.Pin("shop", "web-0", at(5)) // no recorder: nothing happens
	if got := gauge(t, reg, "kprof_agent_recorder_pinned_pods"); got != 1 {
		t.Errorf("kprof_agent_recorder_pinned_pods = %v, want 1", got)
	}
	feed(t, r, c, 10, 20, samples) // now t0+30s: the window keeps 20s to 30s

	ev, w, err := r.Query("shop", "web-1", at(5), at(30))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(at(20)) || total(ev) != 10 {
		t.Errorf("unpinned pod: window from %s with %d samples, want from 20s with 10", w.Start.Sub(t0), total(ev))
	}
	// A fetch starting later than the pin does not release it.
	if _, _, err := r.Query("shop", "web-0", at(25), at(30)); err != nil {
		t.Fatal(err)
	}
	ev, w, err = r.Query("shop", "web-0", at(5), at(30))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(at(5)) || total(ev) != 25 {
		t.Errorf("pinned pod: window from %s with %d samples, want from 5s with 25", w.Start.Sub(t0), total(ev))
	}
	// That fetch covered the pin: released, the next interval expires the rest.
	feed(t, r, c, 30, 1, samples)
	if _, w, _ := r.Query("shop", "web-0", at(5), at(31)); !w.Start.Equal(at(21)) {
		t.Errorf("after the fetch: window from %s, want 21s", w.Start.Sub(t0))
	}

	t.Run("a pin nobody fetches lasts PinTTL", func(t *testing.T) {
		r.Pin("shop", "web-1", at(25))
		feed(t, r, c, 31, 50, samples) // now 81s: pinned 55s ago
		if _, w, _ := r.Query("shop", "web-1", at(0), at(81)); !w.Start.Equal(at(25)) {
			t.Errorf("within PinTTL: window from %s, want 25s", w.Start.Sub(t0))
		}
		feed(t, r, c, 81, 10, samples) // now 91s: the pin expired at 85s
		if _, w, _ := r.Query("shop", "web-1", at(0), at(91)); !w.Start.Equal(at(81)) {
			t.Errorf("after PinTTL: window from %s, want 81s", w.Start.Sub(t0))
		}
		if got := gauge(t, reg, "kprof_agent_recorder_pinned_pods"); got != 0 {
			t.Errorf("kprof_agent_recorder_pinned_pods = %v, want 0", got)
		}
	})
}

func TestMaxBytesEvictsTheOldestBucketsPinnedOnesLast(t *testing.T) {
	// Each second, both pods have a new stack; the bound holds a few seconds.
	samples := func(sec int) []profile.Sample {
		fn := "main.f" + strings.Repeat("x", sec)
		return []profile.Sample{
			sample("shop", "web-0", 10, 10, 1, stackOf(fn, "main.main")),
			sample("shop", "web-1", 20, 20, 1, stackOf(fn, "main.main")),
		}
	}
	probe, pc, _ := testRecorder(t, Config{})
	feed(t, probe, pc, 0, 1, samples)
	perSecond := probe.store.bytes

	r, c, reg := testRecorder(t, Config{Window: time.Minute, MaxBytes: 6 * perSecond})
	r.Pin("shop", "web-0", t0)
	feed(t, r, c, 0, 10, samples)
	if got := gauge(t, reg, "kprof_agent_recorder_bytes"); got > float64(6*perSecond) || got < float64(4*perSecond) {
		t.Errorf("kprof_agent_recorder_bytes = %v, want at most the bound %d and near it", got, 6*perSecond)
	}
	evicted := gauge(t, reg, "kprof_agent_recorder_evicted_buckets_total")
	if evicted < 8 { // 10 seconds recorded, 6 kept
		t.Errorf("kprof_agent_recorder_evicted_buckets_total = %v, want at least 8 of 20", evicted)
	}
	// web-1 (unpinned) went first: web-0 keeps more seconds.
	_, w0, err0 := r.Query("shop", "web-0", t0, at(10))
	_, w1, err1 := r.Query("shop", "web-1", t0, at(10))
	if err := errors.Join(err0, err1); err != nil {
		t.Fatal(err)
	}
	if !w0.Start.Before(w1.Start) || !w1.End.Equal(at(10)) {
		t.Errorf("pinned web-0 covers from %s, unpinned web-1 from %s; want web-0 to keep more", w0.Start.Sub(t0), w1.Start.Sub(t0))
	}
	// What was evicted is not claimed as covered: the window starts after it.
	if ev, _, _ := r.Query("shop", "web-1", t0, at(10)); uint64(w1.End.Sub(w1.Start)/time.Second) != total(ev) {
		t.Errorf("web-1's window [%s, %s] holds %d samples, want one per second", w1.Start.Sub(t0), w1.End.Sub(t0), total(ev))
	}
}

func TestTheConfigCoveringMoreOfTheWindowIsUsed(t *testing.T) {
	r, c, _ := testRecorder(t, Config{})
	hot := stackOf("main.hot")
	// "fine" has 1 s intervals over [0, 4), "coarse" one 10 s interval [0, 10).
	for sec := range 4 {
		c.set(at(float64(sec + 1)))
		if err := r.Consume(t.Context(), event("fine", at(float64(sec)), time.Second, sample("shop", "web-0", 10, 10, 1, hot))); err != nil {
			t.Fatal(err)
		}
	}
	c.set(at(10))
	if err := r.Consume(t.Context(), event("coarse", t0, 10*time.Second, sample("shop", "web-0", 10, 10, 10, hot))); err != nil {
		t.Fatal(err)
	}
	if ev, w, _ := r.Query("shop", "web-0", t0, at(2)); ev.Config != "fine" || total(ev) != 2 || !w.End.Equal(at(2)) {
		t.Errorf("[0, 2s]: config %s, %d samples, window end %s; want fine, 2, 2s", ev.Config, total(ev), w.End.Sub(t0))
	}
	if ev, w, _ := r.Query("shop", "web-0", t0, at(10)); ev.Config != "coarse" || total(ev) != 10 || !w.End.Equal(at(10)) {
		t.Errorf("[0, 10s]: config %s, %d samples, window end %s; want coarse, 10, 10s", ev.Config, total(ev), w.End.Sub(t0))
	}
	if got := r.Interval(); got != 10*time.Second {
		t.Errorf("Interval() = %s, want the longest, 10s", got)
	}
}

func TestWaitFlushedReturnsOnceAnIntervalEndsPastTheTime(t *testing.T) {
	r, c, _ := testRecorder(t, Config{})
	feed(t, r, c, 0, 2, func(int) []profile.Sample { return nil })
	if err := r.WaitFlushed(t.Context(), at(2)); err != nil {
		t.Fatalf("flushed to 2s: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- r.WaitFlushed(t.Context(), at(3.5)) }()
	feed(t, r, c, 2, 1, func(int) []profile.Sample { return nil }) // to 3s: not yet
	select {
	case err := <-done:
		t.Fatalf("returned %v before an interval ended past 3.5s", err)
	default:
	}
	feed(t, r, c, 3, 1, func(int) []profile.Sample { return nil })
	if err := <-done; err != nil {
		t.Fatalf("flushed to 4s: %v", err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Millisecond)
	defer cancel()
	if err := r.WaitFlushed(ctx, at(100)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("past the deadline: %v, want DeadlineExceeded", err)
	}
	go func() { done <- r.WaitFlushed(t.Context(), at(100)) }()
	if err := r.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("after Shutdown: %v, want ErrClosed", err)
	}
	if _, _, err := r.Query("shop", "web-0", t0, at(1)); !errors.Is(err, ErrClosed) {
		t.Errorf("Query after Shutdown: %v, want ErrClosed", err)
	}
	if err := r.Shutdown(t.Context()); err != nil {
		t.Errorf("second Shutdown: %v", err)
	}
}

func TestConfigDefaultsAndBadValues(t *testing.T) {
	var c Config
	c.SetDefaults()
	if err := c.Validate(); err != nil || c.Window != DefaultWindow || c.MaxBytes != DefaultMaxBytes || c.PinTTL != DefaultPinTTL {
		t.Errorf("defaults: %+v, %v", c, err)
	}
	bad := Config{Window: -1, MaxBytes: -1, PinTTL: -1}
	err := bad.Validate()
	for _, field := range []string{"Window:", "MaxBytes:", "PinTTL:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v does not name %s", err, field)
		}
	}
}

func TestABucketStraddlingTheWindowsStartIsKeptWholeAndCovered(t *testing.T) {
	r, c, _ := testRecorder(t, Config{Window: 29 * time.Second})
	// Intervals of 2.5 s, as a loaded collector's ticks drift.
	record := func(i int) {
		start := at(2.5 * float64(i))
		c.set(start.Add(2500*time.Millisecond + 5*time.Second)) // published late: the clock is ahead
		if err := r.Consume(t.Context(), event("cpu", start, 2500*time.Millisecond, sample("shop", "web-0", 10, 10, 1, stackOf("main.hot")))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 16 {
		record(i)
	}
	// The window is the 29 s before the newest interval's end (40 s), whatever
	// the clock says: it starts at 11 s, inside [10, 12.5].
	ev, w, err := r.Query("shop", "web-0", at(0), at(40))
	if err != nil {
		t.Fatal(err)
	}
	if !w.Start.Equal(at(10)) || !w.End.Equal(at(40)) || total(ev) != 12 {
		t.Errorf("window [%s, %s] with %d samples, want [10s, 40s] with 12", w.Start.Sub(t0), w.End.Sub(t0), total(ev))
	}
	if _, w, _ := r.Query("shop", "idle-0", at(0), at(40)); !w.Start.Equal(at(10)) {
		t.Errorf("idle pod: window from %s, want 10s", w.Start.Sub(t0))
	}
	// A pin placed now claims none of the intervals already gone.
	r.Pin("shop", "idle-0", at(0))
	record(16) // the window starts at 13.5 s; the pin keeps from 11 s (its creation's horizon)
	if _, w, _ := r.Query("shop", "idle-0", at(0), at(40)); !w.Start.Equal(at(10)) {
		t.Errorf("pinned after the fact: window from %s, want 10s", w.Start.Sub(t0))
	}
	if _, w, _ := r.Query("shop", "web-0", at(0), at(40)); !w.Start.Equal(at(12.5)) {
		t.Errorf("unpinned: window from %s, want 12.5s", w.Start.Sub(t0))
	}
}
