package capture

import (
	"bytes"
	"net/http"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"
)

func TestTheCPUDurationBoundFollowsTheInterval(t *testing.T) {
	tests := []struct {
		name                     string
		interval, max, dflt, min int
	}{
		{name: "the CRD's minimum interval of 30 s allows 22 s and defaults to it", interval: 30, max: 22, dflt: 22, min: 30},
		{name: "an interval of 39 s is the first to allow the 30 s default", interval: 39, max: 30, dflt: 30, min: 39},
		{name: "an interval of 38 s allows 29 s", interval: 38, max: 29, dflt: 29, min: 38},
		{name: "the default interval of 60 s allows 49 s and keeps the 30 s default", interval: 60, max: 49, dflt: 30, min: 60},
		{name: "an interval of 7 s allows a 1 s profile", interval: 7, max: 1, dflt: 1, min: 7},
		{name: "an interval of 5 s allows no CPU profile", interval: 5, max: -1, dflt: 1, min: 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := MaxCPUDurationSeconds(tt.interval); got != tt.max {
				t.Errorf("MaxCPUDurationSeconds(%d) = %d, want %d", tt.interval, got, tt.max)
			}
			if got := DefaultCPUDurationSecondsFor(tt.interval); got != tt.dflt {
				t.Errorf("DefaultCPUDurationSecondsFor(%d) = %d, want %d", tt.interval, got, tt.dflt)
			}
			if got := MinIntervalSecondsFor(max(tt.max, 1)); got != tt.min {
				t.Errorf("MinIntervalSecondsFor(%d) = %d, want %d", max(tt.max, 1), got, tt.min)
			}
		})
	}
	if got := DefaultCPUDurationSecondsFor(0); got != DefaultCPUDurationSeconds {
		t.Errorf("without a schedule the CPU duration is %d s, want %d s", got, DefaultCPUDurationSeconds)
	}
	// The rule and its inverse agree for every interval a config may use.
	for iv := 7; iv <= 3600; iv++ {
		m := MaxCPUDurationSeconds(iv)
		if MinIntervalSecondsFor(m) > iv {
			t.Fatalf("interval %d allows %d s, but MinIntervalSecondsFor(%d) = %d", iv, m, m, MinIntervalSecondsFor(m))
		}
	}
}

// armingClock is a fake clock that records when the schedule arms its timer, so a
// test knows the schedule has taken every fire before it moves time on.
type armingClock struct {
	*testingclock.FakeClock
	mu   sync.Mutex
	arms int
	due  time.Time
}

func (c *armingClock) NewTimer(d time.Duration) clock.Timer {
	return &armingTimer{Timer: c.FakeClock.NewTimer(d), c: c}
}

func (c *armingClock) armed() (int, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.arms, c.due
}

type armingTimer struct {
	clock.Timer
	c *armingClock
}

func (t *armingTimer) Reset(d time.Duration) bool {
	active := t.Timer.Reset(d)
	t.c.mu.Lock()
	t.c.arms++
	t.c.due = t.c.Now().Add(d)
	t.c.mu.Unlock()
	return active
}

// slowTarget serves pprof endpoints that take fake time: the CPU profile its
// ?seconds, every other type otherSeconds, the worst a round may spend on them.
type slowTarget struct {
	clk   *armingClock
	mu    sync.Mutex
	spans []span // one per round, by CPU request
	// waiting is set while a handler waits for the fake clock, until waitDue.
	waiting bool
	waitDue time.Time
	seconds []string // the ?seconds of every CPU request
}

type span struct{ start, end time.Time }

// wait blocks until the fake clock has moved d on, the request is cancelled or the
// server quits (so a failed test does not hang in its cleanup).
func (s *slowTarget) wait(r *http.Request, quit <-chan struct{}, d time.Duration) {
	ch := s.clk.After(d)
	s.mu.Lock()
	s.waiting, s.waitDue = true, s.clk.Now().Add(d)
	s.mu.Unlock()
	select {
	case <-ch:
	case <-r.Context().Done():
	case <-quit:
	}
	s.mu.Lock()
	s.waiting = false
	s.mu.Unlock()
}

func TestRoundsAtTheMinimumIntervalNeverOverlap(t *testing.T) {
	const (
		rounds       = 40
		intervalSecs = 30 // the ProfilingConfig CRD's minimum
		otherSeconds = 4  // heap takes nearly all of the slack a round keeps
	)
	var body bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&body, 0); err != nil {
		t.Fatal(err)
	}
	clk := &armingClock{FakeClock: testingclock.NewFakeClock(time.Date(2025, 3, 4, 5, 0, 0, 0, time.UTC))}
	st := &slowTarget{clk: clk}
	var quit <-chan struct{}
	srv := newPprofTarget(t, func(path string, real http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if path == "/debug/pprof/profile" {
				secs, err := strconv.Atoi(r.URL.Query().Get("seconds"))
				if err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				st.mu.Lock()
				st.spans = append(st.spans, span{start: clk.Now()})
				st.seconds = append(st.seconds, r.URL.Query().Get("seconds"))
				st.mu.Unlock()
				st.wait(r, quit, time.Duration(secs)*time.Second)
				w.Write(body.Bytes())
				return
			}
			st.wait(r, quit, otherSeconds*time.Second)
			st.mu.Lock()
			st.spans[len(st.spans)-1].end = clk.Now()
			st.mu.Unlock()
			real.ServeHTTP(w, r)
		})
	})
	quit = srv.quit
	metrics, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, rec := startEngine(t, Config{Clock: clk, Metrics: metrics})
	interval := intervalSecs * time.Second
	e.Sync("g", Policy{
		Types:       []ProfileType{TypeCPU, TypeHeap},
		CPUDuration: DefaultCPUDuration(interval), // what a config without cpuProfileDurationSeconds gets
		Interval:    interval,
		Store:       &memStore{},
	}, []Target{srv.target("pod")})

	skipped := func() int { return int(testutil.ToFloat64(metrics.skipped.WithLabelValues(SkipOverlap))) }
	heapDone := func() int { return len(matching(rec.snapshot(), "pod", TypeHeap)) }
	// roundRunning: the target's last round still holds its token (it does so a
	// moment after its last result is reported).
	roundRunning := func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.lookup("g", "pod").busy) > 0
	}
	// settled: the schedule has re-armed after its last fire, every fire started a
	// round or was skipped, and the running round (if any) waits in a handler.
	settled := func() bool {
		arms, due := clk.armed()
		st.mu.Lock()
		started, waiting := len(st.spans), st.waiting
		st.mu.Unlock()
		done := heapDone()
		switch {
		case arms == 0 || !due.After(clk.Now()) || started+skipped() != arms-1:
			return false
		case started == done:
			return clk.Waiters() == 1 && !roundRunning()
		default:
			return started == done+1 && waiting && clk.Waiters() == 2
		}
	}
	for {
		waitUntil(t, "the schedule and the running round to wait for the clock", settled)
		if heapDone() >= rounds {
			break
		}
		_, next := clk.armed()
		st.mu.Lock()
		if st.waiting && st.waitDue.Before(next) {
			next = st.waitDue
		}
		st.mu.Unlock()
		clk.SetTime(next)
	}

	if n := skipped(); n != 0 {
		t.Errorf("%d scheduled rounds were skipped because the previous round was still running", n)
	}
	for _, r := range rec.snapshot() {
		if r.Err != nil {
			t.Errorf("capture failed: %v", r.Err)
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if want := strconv.Itoa(MaxCPUDurationSeconds(intervalSecs)); st.seconds[0] != want {
		t.Errorf("CPU profile asked for %s s, want %s s (the default at interval %d s)", st.seconds[0], want, intervalSecs)
	}
	for i := 1; i < len(st.spans); i++ {
		prev, cur := st.spans[i-1], st.spans[i]
		if cur.start.Before(prev.end) {
			t.Errorf("round %d started at +%s, before round %d ended at +%s", i, cur.start.Sub(prev.start), i-1, prev.end.Sub(prev.start))
		}
	}
}
