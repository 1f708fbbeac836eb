package spool

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/storage"
)

func evictedKeys(evs []eviction, reason string) []string {
	var out []string
	for _, e := range evs {
		if e.reason == reason {
			out = append(out, e.key)
		}
	}
	return out
}

// The spool is not started, which is what a remote that is down looks like to
// Put: nothing leaves the spool.
func TestMaxBytesEvictsTheOldestFirst(t *testing.T) {
	remote := newFakeRemote("bucket")
	rec := newRecorder()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Remote: remote, MaxBytes: 300, Metrics: metrics}
	rec.hook(&cfg)
	s := newSpool(t, cfg)

	ks := keys("bytes", 5)
	for i, k := range ks {
		put(t, s, k, profile(i, 100))
	}
	evs := rec.evictions()
	if got := evictedKeys(evs, ReasonMaxBytes); !slices.Equal(got, ks[:2]) || len(evs) != 2 {
		t.Fatalf("evictions = %v, want the two oldest for %q", evs, ReasonMaxBytes)
	}
	if got, want := metaJSON(t, evs[0].meta), metaJSON(t, testMeta(ks[0])); got != want {
		t.Errorf("OnEvicted meta = %s, want %s", got, want)
	}
	if got := testutil.ToFloat64(metrics.evictions.WithLabelValues(remote.String(), ReasonMaxBytes)); got != 2 {
		t.Errorf("kprof_spool_evictions_total{reason=max-bytes} = %v, want 2", got)
	}
	if n, b := s.Pending(); n != 3 || b != 300 {
		t.Errorf("Pending() = %d, %d; want 3, 300", n, b)
	}

	t.Run("a profile larger than MaxBytes is refused naming the limit", func(t *testing.T) {
		err := s.Put(context.Background(), "bytes/huge", profile(9, 301), testMeta("huge"))
		if err == nil || !strings.Contains(err.Error(), "MaxBytes 300") {
			t.Fatalf("Put of 301 bytes = %v, want an error naming MaxBytes 300", err)
		}
		if n, b := s.Pending(); n != 3 || b != 300 {
			t.Errorf("Pending() = %d, %d after the refused Put; want 3, 300", n, b)
		}
		if evs := rec.evictions(); len(evs) != 2 {
			t.Errorf("the refused Put evicted %v", evs[2:])
		}
	})

	t.Run("the newest entries are kept and delivered", func(t *testing.T) {
		start(t, s)
		flush(t, s)
		remote.checkDelivered(t, map[string][]byte{ks[2]: profile(2, 100), ks[3]: profile(3, 100), ks[4]: profile(4, 100)})
	})
}

func TestMaxBytesNeverEvictsAnEntryBeingUploaded(t *testing.T) {
	remote := newFakeRemote("bucket")
	remote.setHang(true, false)
	remote.started = make(chan string, 1)
	rec := newRecorder()
	cfg := Config{Remote: remote, MaxBytes: 300, Workers: 1}
	rec.hook(&cfg)
	s := newSpool(t, cfg)
	start(t, s)

	ks := keys("inflight", 4)
	put(t, s, ks[0], profile(0, 100))
	if got := <-remote.started; got != ks[0] {
		t.Fatalf("uploading %s, want %s", got, ks[0])
	}
	for i, k := range ks[1:] {
		put(t, s, k, profile(i+1, 100))
	}
	if got := evictedKeys(rec.evictions(), ReasonMaxBytes); !slices.Equal(got, ks[1:2]) {
		t.Errorf("evicted %v, want only %s (the oldest not being uploaded)", got, ks[1])
	}

	t.Run("a Put that cannot fit beside uploads in flight is refused", func(t *testing.T) {
		err := s.Put(context.Background(), "inflight/big", profile(9, 300), testMeta("big"))
		if err == nil || !strings.Contains(err.Error(), "spool full") {
			t.Fatalf("Put = %v, want a spool full error", err)
		}
		if n, _ := s.Pending(); n != 3 {
			t.Errorf("Pending() = %d after the refused Put, want 3: nothing evicted for nothing", n)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_ = s.Shutdown(ctx) // cancels the hanging upload
}

func TestMaxAgeEvictsOldEntries(t *testing.T) {
	t.Run("a Put evicts entries older than MaxAge", func(t *testing.T) {
		clock := newFakeClock()
		rec := newRecorder()
		cfg := Config{Remote: newFakeRemote("bucket"), MaxAge: time.Hour, Now: clock.Now}
		rec.hook(&cfg)
		s := newSpool(t, cfg)
		put(t, s, "age/a", profile(1, 10))
		put(t, s, "age/b", profile(2, 10))
		clock.Advance(30 * time.Minute)
		put(t, s, "age/c", profile(3, 10))
		if evs := rec.evictions(); len(evs) != 0 {
			t.Fatalf("evictions at 30m = %v, want none", evs)
		}
		clock.Advance(31 * time.Minute)
		put(t, s, "age/d", profile(4, 10))
		if got := evictedKeys(rec.evictions(), ReasonMaxAge); !slices.Equal(got, []string{"age/a", "age/b"}) {
			t.Errorf("evicted for max-age %v, want [age/a age/b]", got)
		}
		if n, _ := s.Pending(); n != 2 {
			t.Errorf("Pending() = %d, want 2", n)
		}
	})

	t.Run("New evicts entries that expired while no spool ran", func(t *testing.T) {
		clock := newFakeClock()
		dir := filepath.Join(t.TempDir(), "spool")
		first := newSpool(t, Config{Dir: dir, Remote: newFakeRemote("bucket"), MaxAge: time.Hour, Now: clock.Now})
		put(t, first, "age/old", profile(1, 10))
		clock.Advance(90 * time.Minute)
		put(t, first, "age/new", profile(2, 10)) // evicts age/old in the first spool already
		clock.Advance(time.Hour + time.Minute)
		if err := first.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		rec := newRecorder()
		cfg := Config{Dir: dir, Remote: newFakeRemote("bucket"), MaxAge: time.Hour, Now: clock.Now}
		rec.hook(&cfg)
		second := newSpool(t, cfg)
		if got := evictedKeys(rec.evictions(), ReasonMaxAge); !slices.Equal(got, []string{"age/new"}) {
			t.Errorf("New evicted %v for max-age, want [age/new]", got)
		}
		if n, _ := second.Pending(); n != 0 {
			t.Errorf("Pending() = %d, want 0", n)
		}
	})

	t.Run("a running spool evicts expired entries periodically", func(t *testing.T) {
		clock := newFakeClock()
		remote := newFakeRemote("bucket")
		remote.setFail(failFirst(1<<30, storage.KindEndpointUnreachable))
		rec := newRecorder()
		// An hour of backoff keeps the entry out of flight after its first attempt.
		cfg := Config{Remote: remote, MaxAge: time.Hour, Now: clock.Now, MinBackoff: time.Hour, MaxBackoff: time.Hour}
		rec.hook(&cfg)
		s := newSpool(t, cfg)
		s.ageEvery = time.Millisecond
		put(t, s, "age/a", profile(1, 10))
		start(t, s)
		clock.Advance(2 * time.Hour)
		if ev := rec.waitEviction(t); ev.key != "age/a" || ev.reason != ReasonMaxAge {
			t.Errorf("OnEvicted(%q, %q), want (age/a, max-age)", ev.key, ev.reason)
		}
		flush(t, s)
	})
}
