package capture

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/kprof/kprof/internal/storage"
)

func TestScheduledCaptureStoresExactlyWhatTheTargetServed(t *testing.T) {
	srv := newPprofTarget(t, nil)
	store := &memStore{}
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	e, rec := startEngine(t, Config{Metrics: metrics})
	tmpl := "{prefix}/{namespace}/{pod}/{timestamp}/{type}.pprof"
	p := Policy{
		Types:       []ProfileType{TypeCPU, TypeHeap, TypeGoroutine},
		CPUDuration: time.Second,
		Interval:    500 * time.Millisecond,
		Store:       store,
		KeyTemplate: tmpl,
		KeyPrefix:   "test",
	}
	target := srv.target("app-1")
	target.Meta.Labels = map[string]string{"team": "core"}
	e.Sync("g", p, []Target{target})

	rs := rec.waitFor(t, "one round of cpu, heap and goroutine", func(rs []Result) bool {
		return len(matching(rs, "app-1", "")) >= 3
	})
	if err := e.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}

	for i, want := range p.Types {
		r := rs[i]
		t.Run("the "+string(want)+" profile is stored as served", func(t *testing.T) {
			if r.Type != want || r.Err != nil || r.Reason != ReasonSchedule || r.Group != "g" {
				t.Fatalf("result = type %s reason %q group %q err %v, want a successful scheduled %s", r.Type, r.Reason, r.Group, r.Err, want)
			}
			stored, ok := store.get(r.Key)
			if !ok {
				t.Fatalf("no profile stored under %q", r.Key)
			}
			uri := "/debug/pprof/" + want.Endpoint()
			if want == TypeCPU {
				uri += "?seconds=1"
			}
			// The first round's request was the first one served at this URI
			// (a later round may have started before Shutdown).
			served := srv.servedBodies(uri)
			if len(served) == 0 {
				t.Fatalf("server never served %s", uri)
			}
			if !bytes.Equal(stored.data, served[0]) {
				t.Errorf("stored %d bytes differ from the %d bytes the target served", len(stored.data), len(served[0]))
			}
			if r.Bytes != len(stored.data) {
				t.Errorf("Result.Bytes = %d, want %d", r.Bytes, len(stored.data))
			}
			if len(stored.data) < 2 || stored.data[0] != 0x1f || stored.data[1] != 0x8b {
				t.Errorf("stored bytes do not start with the gzip magic, so they were re-encoded")
			}
			if _, err := profile.ParseData(stored.data); err != nil {
				t.Errorf("stored bytes do not parse as pprof: %v", err)
			}

			m := stored.meta
			wantKey := "test/ns/app-1/" + r.Started.UTC().Format(storage.TimestampLayout) + "/" + string(want) + ".pprof"
			if r.Key != wantKey {
				t.Errorf("key = %q, want %q", r.Key, wantKey)
			}
			if m.Type != string(want) || m.Reason != ReasonSchedule || !m.CapturedAt.Equal(r.Started) || m.CapturedAt.Location() != time.UTC {
				t.Errorf("meta = type %q reason %q capturedAt %v, want %s, schedule, %v in UTC", m.Type, m.Reason, m.CapturedAt, want, r.Started)
			}
			if m.Namespace != "ns" || m.Pod != "app-1" || m.Service != "svc" || m.Labels["team"] != "core" || m.Target != "ns/app-1" {
				t.Errorf("meta does not carry the target's metadata: %+v", m)
			}
			wantDur := time.Duration(0)
			if want == TypeCPU {
				wantDur = time.Second
			}
			if m.Duration != wantDur {
				t.Errorf("meta Duration = %v, want %v", m.Duration, wantDur)
			}
		})
	}

	t.Run("the metrics count the successes and bytes", func(t *testing.T) {
		for _, typ := range p.Types {
			if got := testutil.ToFloat64(metrics.captures.WithLabelValues(string(typ), "success")); got < 1 {
				t.Errorf("kprof_captures_total{type=%s,result=success} = %v, want >= 1", typ, got)
			}
			if got := testutil.ToFloat64(metrics.bytes.WithLabelValues(string(typ))); got <= 0 {
				t.Errorf("kprof_capture_bytes_total{type=%s} = %v, want > 0", typ, got)
			}
		}
		if got := testutil.ToFloat64(metrics.targets.WithLabelValues("g")); got != 1 {
			t.Errorf("kprof_targets{group=g} = %v, want 1", got)
		}
		if got := testutil.ToFloat64(metrics.inFlight); got != 0 {
			t.Errorf("kprof_captures_in_flight after shutdown = %v, want 0", got)
		}
	})
}

func TestSyncUsesTheNewBaseURLAtTheNextRound(t *testing.T) {
	first, second := newPprofTarget(t, nil), newPprofTarget(t, nil)
	store := &memStore{}
	e, rec := startEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeGoroutine}, Interval: 50 * time.Millisecond, Store: store}

	e.Sync("g", p, []Target{first.target("a")})
	rec.waitFor(t, "a capture from the first server", func(rs []Result) bool {
		return hasSuccess(rs, "a", TypeGoroutine)
	})
	moved := second.target("a")
	moved.Meta.Pod = "a-moved"
	e.Sync("g", p, []Target{moved})
	rs := rec.waitFor(t, "a capture from the second server", func(rs []Result) bool {
		for _, r := range rs {
			if r.Err == nil && r.Target.BaseURL == second.base() {
				return true
			}
		}
		return false
	})
	if second.requests.Load() == 0 {
		t.Fatal("the second server got no request")
	}
	last := rs[len(rs)-1]
	if got, _ := store.get(last.Key); got.meta.Pod != "a-moved" {
		t.Errorf("stored pod = %q, want the new Meta's a-moved", got.meta.Pod)
	}
	if n := e.TargetCount("g"); n != 1 {
		t.Errorf("TargetCount = %d, want 1 (same ID)", n)
	}
}

func TestIntervalZeroSchedulesNothingButCaptureNowWorks(t *testing.T) {
	manual, clock := newPprofTarget(t, nil), newPprofTarget(t, nil)
	store := &memStore{}
	e, rec := startEngine(t, Config{})
	pManual := Policy{Types: []ProfileType{TypeHeap, TypeGoroutine}, Store: store}
	e.Sync("manual", pManual, []Target{manual.target("m")})
	// A second group's scheduled rounds serve as the clock: once it has run
	// several rounds, a schedule for the first group would have fired too.
	e.Sync("clock", Policy{Types: []ProfileType{TypeGoroutine}, Interval: 20 * time.Millisecond, Store: store}, []Target{clock.target("c")})
	rec.waitFor(t, "five rounds of the clock group", func(rs []Result) bool {
		return len(matching(rs, "c", "")) >= 5
	})
	if n := manual.requests.Load(); n != 0 {
		t.Fatalf("target of a group with Interval 0 got %d scheduled requests, want 0", n)
	}
	if got := e.TargetCount("manual"); got != 1 {
		t.Errorf("TargetCount(manual) = %d, want 1", got)
	}
	if got := e.Groups(); strings.Join(got, ",") != "clock,manual" {
		t.Errorf("Groups() = %v, want [clock manual]", got)
	}

	results := e.CaptureNow(context.Background(), "manual", manual.target("m"), pManual, "")
	if len(results) != 2 {
		t.Fatalf("CaptureNow returned %d results, want 2", len(results))
	}
	for _, r := range results {
		if r.Err != nil || r.Reason != ReasonManual || r.Key == "" {
			t.Errorf("CaptureNow %s: err %v reason %q key %q, want a stored manual capture", r.Type, r.Err, r.Reason, r.Key)
		}
	}
}

func TestCaptureNow(t *testing.T) {
	srv := newPprofTarget(t, nil)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		policy      Policy
		wantReasons []string // one per result, "" for success
		wantErr     string
	}{
		{
			name:        "a one-shot capture stores every type without Start",
			ctx:         context.Background(),
			policy:      Policy{Types: []ProfileType{TypeHeap, TypeAllocs, TypeThreadCreate}, Store: &memStore{}},
			wantReasons: []string{"", "", ""},
		},
		{
			name:        "a store error is reported as StoreFailed",
			ctx:         context.Background(),
			policy:      Policy{Types: []ProfileType{TypeHeap}, Store: &memStore{err: errors.New("disk full")}},
			wantReasons: []string{FailureStoreFailed},
			wantErr:     "disk full",
		},
		{
			name:        "a cancelled caller context is reported as Canceled",
			ctx:         cancelled,
			policy:      Policy{Types: []ProfileType{TypeHeap, TypeGoroutine}, Store: &memStore{}},
			wantReasons: []string{FailureCanceled, FailureCanceled},
		},
		{
			name:        "an unknown type is reported as InvalidPolicy",
			ctx:         context.Background(),
			policy:      Policy{Types: []ProfileType{"bogus"}, Store: &memStore{}},
			wantReasons: []string{FailureInvalidPolicy},
			wantErr:     `unknown profile type "bogus"`,
		},
		{
			name:        "a policy without types yields one InvalidPolicy result",
			ctx:         context.Background(),
			policy:      Policy{Store: &memStore{}},
			wantReasons: []string{FailureInvalidPolicy},
			wantErr:     "Types is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, rec := newTestEngine(t, Config{})
			results := e.CaptureNow(tt.ctx, "cli", srv.target("one"), tt.policy, "threshold: cpu 93%")
			if len(results) != len(tt.wantReasons) {
				t.Fatalf("got %d results, want %d:\n%s", len(results), len(tt.wantReasons), describe(results))
			}
			for i, r := range results {
				if r.FailureReason != tt.wantReasons[i] {
					t.Errorf("result %d (%s): FailureReason %q, want %q (err %v)", i, r.Type, r.FailureReason, tt.wantReasons[i], r.Err)
				}
				if (r.Err == nil) != (tt.wantReasons[i] == "") {
					t.Errorf("result %d: Err = %v with FailureReason %q", i, r.Err, r.FailureReason)
				}
				if tt.wantErr != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.wantErr)) {
					t.Errorf("result %d: Err = %v, want it to mention %q", i, r.Err, tt.wantErr)
				}
				if r.Err != nil && !strings.HasPrefix(r.Err.Error(), "capture ns/one "+string(r.Type)) {
					t.Errorf("result %d: Err = %q, want it to start with %q", i, r.Err, "capture ns/one "+string(r.Type))
				}
				if r.Reason != "threshold: cpu 93%" {
					t.Errorf("result %d: Reason = %q, want the given reason", i, r.Reason)
				}
			}
			if got := len(rec.snapshot()); got != len(results) {
				t.Errorf("OnResult called %d times, want once per result (%d)", got, len(results))
			}
		})
	}
}

func TestSyncIgnoresAnInvalidPolicyAndTargetsWithoutID(t *testing.T) {
	srv := newPprofTarget(t, nil)
	e, _ := newTestEngine(t, Config{})
	good := Policy{Types: []ProfileType{TypeHeap}, Store: &memStore{}}
	e.Sync("g", good, []Target{srv.target("a"), {BaseURL: srv.base()}})
	if n := e.TargetCount("g"); n != 1 {
		t.Fatalf("TargetCount after sync with an ID-less target = %d, want 1", n)
	}
	e.Sync("g", Policy{Types: []ProfileType{TypeHeap}}, []Target{srv.target("a"), srv.target("b")})
	if n := e.TargetCount("g"); n != 1 {
		t.Errorf("TargetCount after sync with a policy without Store = %d, want the previous 1", n)
	}
	e.Remove("g")
	if n, groups := e.TargetCount("g"), e.Groups(); n != 0 || len(groups) != 0 {
		t.Errorf("after Remove: TargetCount = %d, Groups = %v; want 0 and none", n, groups)
	}
}
