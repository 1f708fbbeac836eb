package spool

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/storage"
)

func TestRetriesUntilTheRemoteRecovers(t *testing.T) {
	tests := []struct {
		name     string
		kind     storage.ErrorKind
		failures int
		workers  int
	}{
		// Two workers start two attempts before any failure is known; from the
		// first outage failure on, attempts are one at a time.
		{name: "an unreachable endpoint is retried until it comes back", kind: storage.KindEndpointUnreachable, failures: 5, workers: 2},
		{name: "missing credentials are retried until they are fixed", kind: storage.KindInvalidCredentials, failures: 3, workers: 2},
		// Failures of other kinds do not back off globally; one worker keeps the
		// order of health updates deterministic.
		{name: "a store error is retried until the store accepts the profile", kind: storage.KindStoreError, failures: 4, workers: 1},
		{name: "a failed verification is retried until the object matches", kind: storage.KindVerifyFailed, failures: 2, workers: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			remote := newFakeRemote("bucket")
			remote.setFail(failFirst(tt.failures, tt.kind))
			rec := newRecorder()
			metrics, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Remote: remote, Workers: tt.workers, Metrics: metrics}
			rec.hook(&cfg)
			s := newSpool(t, cfg)

			ks := keys("retry", 3)
			want := map[string][]byte{}
			for i, k := range ks {
				want[k] = profile(i, 100+i)
				put(t, s, k, want[k])
			}
			start(t, s)
			flush(t, s)

			remote.checkDelivered(t, want)
			rec.checkUploaded(t, ks)
			if ev := rec.evictions(); len(ev) != 0 {
				t.Errorf("evictions = %v, want none", ev)
			}
			store := remote.String()
			if got := testutil.ToFloat64(metrics.failures.WithLabelValues(store, string(tt.kind))); got != float64(tt.failures) {
				t.Errorf("kprof_spool_upload_failures_total{kind=%s} = %v, want %d", tt.kind, got, tt.failures)
			}
			if got := testutil.ToFloat64(metrics.uploads.WithLabelValues(store, "failure")); got != float64(tt.failures) {
				t.Errorf("kprof_spool_uploads_total{result=failure} = %v, want %d", got, tt.failures)
			}
			if got := testutil.ToFloat64(metrics.uploads.WithLabelValues(store, "success")); got != 3 {
				t.Errorf("kprof_spool_uploads_total{result=success} = %v, want 3", got)
			}
			changes := rec.healthChanges()
			if len(changes) != 2 || storage.KindOf(changes[0]) != tt.kind || changes[1] != nil {
				t.Errorf("OnHealth calls = %v, want [%s error, nil]", changes, tt.kind)
			}
			if err := s.Health(); err != nil {
				t.Errorf("Health() = %v after recovery", err)
			}
		})
	}
}

func TestAnOutageIsProbedOneUploadAtATime(t *testing.T) {
	remote := newFakeRemote("bucket")
	remote.setFail(failFirst(1<<30, storage.KindEndpointUnreachable))
	remote.failDelay = 2 * time.Millisecond
	s := newSpool(t, Config{Remote: remote, Workers: 4})

	ks := keys("outage", 11)
	want := map[string][]byte{}
	for i, k := range ks {
		want[k] = profile(i, 50)
	}
	put(t, s, ks[0], want[ks[0]])
	start(t, s)
	waitFor(t, "the first failure to make the remote unhealthy", func() bool { return s.Health() != nil })

	// The remote is known to be down: from now on, however many entries wait
	// and workers are idle, at most one upload may be in flight.
	remote.resetMax()
	for _, k := range ks[1:] {
		put(t, s, k, want[k])
	}
	calls, _ := remote.snapshot()
	waitFor(t, "30 more attempts", func() bool { c, _ := remote.snapshot(); return c >= calls+30 })
	if _, maxInFlight := remote.snapshot(); maxInFlight != 1 {
		t.Errorf("%d uploads were in flight at once while the remote was down, want 1", maxInFlight)
	}
	if kind := storage.KindOf(s.Health()); kind != storage.KindEndpointUnreachable {
		t.Errorf("Health() kind = %q during the outage", kind)
	}

	remote.setFail(nil)
	flush(t, s)
	remote.checkDelivered(t, want)
}

func TestProbeRefreshesHealthWhileIdle(t *testing.T) {
	remote := &checkingRemote{fakeRemote: newFakeRemote("bucket")}
	remote.setCheck(outage(storage.KindNoSuchBucket))
	rec := newRecorder()
	cfg := Config{Remote: remote, ProbeInterval: time.Millisecond}
	rec.hook(&cfg)
	s := newSpool(t, cfg)
	start(t, s)

	if err := rec.waitHealth(t); storage.KindOf(err) != storage.KindNoSuchBucket {
		t.Fatalf("first OnHealth = %v, want a NoSuchBucket error", err)
	}
	remote.setCheck(nil)
	if err := rec.waitHealth(t); err != nil {
		t.Fatalf("second OnHealth = %v, want nil once Check succeeds", err)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health() = %v, want nil", err)
	}
	if got := rec.healthChanges(); len(got) != 2 {
		t.Errorf("OnHealth calls = %v, want exactly 2 transitions", got)
	}
	if calls, _ := remote.snapshot(); calls != 0 {
		t.Errorf("an idle spool made %d Put calls", calls)
	}
}

// After an outage, entries do not wait out their (here: hour-long) backoff: the
// Check that sees the remote back resumes them at once.
func TestASuccessfulCheckEndsAnOutage(t *testing.T) {
	gate := make(chan struct{})
	remote := &checkingRemote{fakeRemote: newFakeRemote("bucket"), gate: gate}
	remote.setFail(failFirst(1<<30, storage.KindEndpointUnreachable))
	remote.setCheck(outage(storage.KindEndpointUnreachable))
	rec := newRecorder()
	cfg := Config{Remote: remote, ProbeInterval: time.Millisecond, MinBackoff: time.Hour, MaxBackoff: time.Hour}
	rec.hook(&cfg)
	s := newSpool(t, cfg)
	want := map[string][]byte{"resume/a": profile(1, 10)}
	put(t, s, "resume/a", want["resume/a"])
	start(t, s)

	// The first Check is held at the gate until the upload attempt failed, so
	// the entry has an hour-long backoff of its own.
	waitFor(t, "a failed upload attempt", func() bool { c, _ := remote.snapshot(); return c >= 1 && s.Health() != nil })
	close(gate)
	waitFor(t, "three failed checks", func() bool { return remote.checkCount() >= 3 })
	remote.setFail(nil)
	remote.setCheck(nil)
	flush(t, s)
	remote.checkDelivered(t, want)
	if got := rec.healthChanges(); len(got) != 2 || storage.KindOf(got[0]) != storage.KindEndpointUnreachable || got[1] != nil {
		t.Errorf("OnHealth calls = %v, want [EndpointUnreachable error, nil]", got)
	}
}
