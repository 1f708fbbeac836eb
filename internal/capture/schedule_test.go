package capture

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestInitialDelaysAreSpreadOverHalfTheInterval(t *testing.T) {
	const interval, draws, buckets = 10 * time.Second, 2000, 10
	rng := rand.New(rand.NewPCG(1, 2))
	var counts [buckets]int
	for range draws {
		d := initialDelay(rng, interval)
		if d < 0 || d >= interval/2 {
			t.Fatalf("initial delay %v outside [0, %v)", d, interval/2)
		}
		counts[int(d*buckets/(interval/2))]++
	}
	// Uniform: each tenth of the half interval gets about draws/buckets = 200.
	for i, n := range counts {
		if n < 140 || n > 260 {
			t.Errorf("tenth %d of the half interval got %d of %d first rounds, want about %d: %v", i, n, draws, draws/buckets, counts)
		}
	}
	if d := initialDelay(rng, 0); d != 0 {
		t.Errorf("initial delay for interval 0 = %v, want 0", d)
	}
}

func TestJitteredIntervalsStayWithinTheJitter(t *testing.T) {
	tests := []struct {
		name   string
		jitter float64
	}{
		{name: "the default jitter of 10% spreads rounds by up to a tenth", jitter: 0.1},
		{name: "a jitter of 50% spreads rounds by up to half", jitter: 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const interval = time.Minute
			rng := rand.New(rand.NewPCG(3, 4))
			lo := time.Duration(float64(interval) * (1 - tt.jitter))
			hi := time.Duration(float64(interval) * (1 + tt.jitter))
			minSeen, maxSeen := hi, lo
			for range 2000 {
				d := jitteredInterval(rng, interval, tt.jitter)
				if d < lo || d > hi {
					t.Fatalf("next delay %v outside [%v, %v]", d, lo, hi)
				}
				minSeen, maxSeen = min(minSeen, d), max(maxSeen, d)
			}
			spread := hi - lo
			if minSeen > lo+spread/20 || maxSeen < hi-spread/20 {
				t.Errorf("delays span [%v, %v], want close to the whole [%v, %v]", minSeen, maxSeen, lo, hi)
			}
		})
	}
}

func TestConcurrencyLimitHoldsAcrossGroups(t *testing.T) {
	const limit, perGroup = 2, 3
	var cur, maxSeen atomic.Int64
	arrived := make(chan string, 64)
	release := make(chan struct{})
	counting := func(id string, quit *<-chan struct{}) func(string, http.Handler) http.Handler {
		return func(path string, real http.Handler) http.Handler {
			if path != "/debug/pprof/" {
				return nil
			}
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := cur.Add(1)
				for m := maxSeen.Load(); n > m && !maxSeen.CompareAndSwap(m, n); m = maxSeen.Load() {
				}
				arrived <- id
				select {
				case <-release:
				case <-r.Context().Done():
				case <-*quit:
				}
				real.ServeHTTP(w, r)
				cur.Add(-1)
			})
		}
	}
	e, _ := startEngine(t, Config{MaxConcurrent: limit})
	p := Policy{Types: []ProfileType{TypeHeap}, Interval: 20 * time.Millisecond, Store: &memStore{}}
	for _, g := range []string{"a", "b"} {
		var targets []Target
		for i := range perGroup {
			id := fmt.Sprintf("%s%d", g, i)
			var quit <-chan struct{}
			srv := newPprofTarget(t, counting(id, &quit))
			quit = srv.quit
			targets = append(targets, srv.target(id))
		}
		e.Sync(g, p, targets)
	}

	// Keep the engine saturated: release a request only once `limit` are held,
	// until every target of both groups has been served.
	served := map[string]bool{}
	held := 0
	for len(served) < 2*perGroup {
		served[recv(t, "a request", arrived)] = true
		held++
		for ; held >= limit; held-- {
			select {
			case release <- struct{}{}:
			case <-time.After(waitTimeout):
				t.Fatal("gave up waiting for a held request to take its release")
			}
		}
	}
	close(release)

	if got := maxSeen.Load(); got > limit {
		t.Errorf("saw %d requests at once, want at most MaxConcurrent = %d", got, limit)
	}
	if got := maxSeen.Load(); got < limit {
		t.Errorf("saw at most %d requests at once; the test never saturated the limit of %d", got, limit)
	}
}

func TestOverlappingRoundsAreSkippedAndCounted(t *testing.T) {
	arrived := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := newBlockingTarget(t, arrived, release, nil)
	metrics, err := NewMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	e, rec := startEngine(t, Config{Metrics: metrics})
	e.Sync("g", Policy{Types: []ProfileType{TypeHeap}, Interval: 20 * time.Millisecond, Store: &memStore{}}, []Target{srv.target("slow")})
	recv(t, "the first round's request", arrived)

	skipped := func() float64 { return testutil.ToFloat64(metrics.skipped.WithLabelValues(SkipOverlap)) }
	waitUntil(t, "three skipped rounds", func() bool { return skipped() >= 3 })
	if n := srv.requests.Load(); n != 1 {
		t.Fatalf("target got %d requests while its first round was running, want 1 (overlapping rounds must be skipped)", n)
	}
	if got := testutil.ToFloat64(metrics.inFlight); got != 1 {
		t.Errorf("kprof_captures_in_flight = %v while one round runs, want 1", got)
	}

	close(release)
	rec.waitFor(t, "the schedule to resume after the long round", func(rs []Result) bool {
		ok := 0
		for _, r := range matching(rs, "slow", TypeHeap) {
			if r.Err == nil {
				ok++
			}
		}
		return ok >= 2
	})
}
