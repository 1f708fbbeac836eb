package otlp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/kprof/kprof/internal/agent/profile"
)

// fastRetries makes retries quick in tests.
func fastRetries(cfg Config) Config {
	cfg.RetryBaseDelay, cfg.RetryMaxDelay = time.Millisecond, 5*time.Millisecond
	return cfg
}

func newTestProfiles(t *testing.T, cfg Config) *Profiles {
	t.Helper()
	p, err := NewProfiles(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Shutdown(context.Background()) })
	return p
}

func newTestMetrics(t *testing.T, cfg Config) *Metrics {
	t.Helper()
	m, err := NewMetrics(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown(context.Background()) })
	return m
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func unavailable() error { return status.Error(codes.Unavailable, "collector restarting") }

func withRetryInfo(t *testing.T, code codes.Code, delay time.Duration) error {
	t.Helper()
	st, err := status.New(code, "slow down").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(delay)})
	if err != nil {
		t.Fatal(err)
	}
	return st.Err()
}

func TestProfilesExportsTheConvertedEvent(t *testing.T) {
	f := startFakeCollector(t, nil)
	p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true})
	if p.Name() != "otlp-profiles" {
		t.Errorf("Name() = %q", p.Name())
	}
	ev := testEvent()
	if err := p.Consume(testCtx(t), ev); err != nil {
		t.Fatal(err)
	}
	calls, got, _ := f.snapshot()
	if calls != 1 || len(got) != 1 {
		t.Fatalf("%d calls, %d accepted, want 1 each", calls, len(got))
	}
	want, err := Convert(ev)
	if err != nil {
		t.Fatal(err)
	}
	if g, w := totals(got[0]), totals(want); g["cpu/nanoseconds"] != w["cpu/nanoseconds"] || g["samples/count"] != w["samples/count"] {
		t.Errorf("received totals %v, want %v", g, w)
	}
	if got[0].ResourceProfiles().Len() != 3 {
		t.Errorf("received %d resources, want 3", got[0].ResourceProfiles().Len())
	}
}

func TestProfilesOfAnEmptyEventExportNothing(t *testing.T) {
	f := startFakeCollector(t, nil)
	p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true})
	if err := p.Consume(testCtx(t), &profile.Event{Config: "idle"}); err != nil {
		t.Fatal(err)
	}
	if calls, _, _ := f.snapshot(); calls != 0 {
		t.Errorf("%d calls for an event without samples, want 0", calls)
	}
}

func TestRetriesThenSuccessExportOnce(t *testing.T) {
	tests := []struct {
		name    string
		replies func(t *testing.T) []reply
	}{
		{"Unavailable then ResourceExhausted with RetryInfo are retried", func(t *testing.T) []reply {
			return []reply{{err: unavailable()}, {err: withRetryInfo(t, codes.ResourceExhausted, 20*time.Millisecond)}}
		}},
		{"Aborted and DeadlineExceeded are retried", func(*testing.T) []reply {
			return []reply{{err: status.Error(codes.Aborted, "conflict")}, {err: status.Error(codes.DeadlineExceeded, "server timeout")}}
		}},
		{"an attempt past Timeout is retried", func(*testing.T) []reply {
			return []reply{{block: true}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			replies := tt.replies(t)
			f := startFakeCollector(t, nil, replies...)
			cfg := fastRetries(Config{Endpoint: f.endpoint, Insecure: true, Timeout: 200 * time.Millisecond})
			p := newTestProfiles(t, cfg)
			if err := p.Consume(testCtx(t), testEvent()); err != nil {
				t.Fatalf("Consume = %v, want success after retries", err)
			}
			m := newTestMetrics(t, cfg)
			f.mu.Lock()
			f.replies = tt.replies(t)
			f.mu.Unlock()
			if err := m.Consume(testCtx(t), testMetrics()); err != nil {
				t.Fatalf("metrics Consume = %v, want success after retries", err)
			}
			calls, profiles, metrics := f.snapshot()
			if want := 2 * (len(replies) + 1); calls != want || len(profiles) != 1 || len(metrics) != 1 {
				t.Errorf("%d calls, %d profile and %d metric exports accepted; want %d calls and exactly one of each", calls, len(profiles), len(metrics), want)
			}
		})
	}
}

func TestRetryInfoSetsTheWait(t *testing.T) {
	// RetryBaseDelay of an hour: only the server's RetryInfo can make the retry happen in time.
	f := startFakeCollector(t, nil, reply{err: withRetryInfo(t, codes.Unavailable, time.Millisecond)})
	cfg := Config{Endpoint: f.endpoint, Insecure: true, RetryBaseDelay: time.Hour, RetryMaxDelay: time.Hour, MaxElapsed: 30 * time.Second}
	p := newTestProfiles(t, cfg)
	if err := p.Consume(testCtx(t), testEvent()); err != nil {
		t.Fatalf("Consume = %v, want a retry after the server's 1ms", err)
	}
	if calls, got, _ := f.snapshot(); calls != 2 || len(got) != 1 {
		t.Errorf("%d calls, %d accepted; want 2 and 1", calls, len(got))
	}
}

func TestErrorsThatAreNotRetried(t *testing.T) {
	for _, code := range []codes.Code{codes.InvalidArgument, codes.Unauthenticated, codes.PermissionDenied, codes.Unimplemented, codes.Internal} {
		t.Run(code.String()+" fails at once and names the code and endpoint", func(t *testing.T) {
			f := startFakeCollector(t, nil, reply{err: status.Error(code, "no")})
			p := newTestProfiles(t, fastRetries(Config{Endpoint: f.endpoint, Insecure: true}))
			err := p.Consume(testCtx(t), testEvent())
			if err == nil || !strings.Contains(err.Error(), code.String()) || !strings.Contains(err.Error(), f.endpoint) {
				t.Fatalf("Consume = %v, want an error naming %s and %s", err, code, f.endpoint)
			}
			if status.Code(errors.Unwrap(errors.Unwrap(err))) != code && !strings.Contains(err.Error(), "code = "+code.String()) {
				t.Errorf("error %v does not carry the status", err)
			}
			if calls, got, _ := f.snapshot(); calls != 1 || len(got) != 0 {
				t.Errorf("%d calls, %d accepted; want 1 call and no retry", calls, len(got))
			}
		})
	}
}

func TestRetriesStopAtMaxElapsedAndCtx(t *testing.T) {
	t.Run("MaxElapsed ends the retries with an error naming the code", func(t *testing.T) {
		f := startFakeCollector(t, nil, reply{err: unavailable()}, reply{err: unavailable()}, reply{err: unavailable()},
			reply{err: unavailable()}, reply{err: unavailable()}, reply{err: unavailable()})
		cfg := Config{Endpoint: f.endpoint, Insecure: true, RetryBaseDelay: 20 * time.Millisecond, RetryMaxDelay: 20 * time.Millisecond, MaxElapsed: 50 * time.Millisecond}
		p := newTestProfiles(t, cfg)
		err := p.Consume(testCtx(t), testEvent())
		if err == nil || !strings.Contains(err.Error(), "Unavailable") {
			t.Fatalf("Consume = %v, want an Unavailable error", err)
		}
		if calls, got, _ := f.snapshot(); calls < 1 || len(got) != 0 {
			t.Errorf("%d calls, %d accepted; want at least one call and nothing accepted", calls, len(got))
		}
	})
	t.Run("a retry that would pass the caller's deadline is not waited for", func(t *testing.T) {
		f := startFakeCollector(t, nil, reply{err: unavailable()})
		cfg := Config{Endpoint: f.endpoint, Insecure: true, RetryBaseDelay: time.Hour, RetryMaxDelay: time.Hour, MaxElapsed: 2 * time.Hour}
		p := newTestProfiles(t, cfg)
		err := p.Consume(testCtx(t), testEvent()) // a minute left, an hour to wait
		if err == nil || !strings.Contains(err.Error(), "would pass the deadline") || !strings.Contains(err.Error(), "Unavailable") {
			t.Fatalf("Consume = %v, want an Unavailable error that gives up at once", err)
		}
		if calls, _, _ := f.snapshot(); calls != 1 {
			t.Errorf("%d calls, want 1", calls)
		}
	})
	t.Run("a cancelled ctx ends the retries", func(t *testing.T) {
		f := startFakeCollector(t, nil, reply{err: unavailable()})
		logs := newLogWatch()
		cfg := Config{Endpoint: f.endpoint, Insecure: true, RetryBaseDelay: time.Hour, RetryMaxDelay: time.Hour, MaxElapsed: 2 * time.Hour, Logger: slog.New(logs)}
		p := newTestProfiles(t, cfg)
		// No deadline: one an hour away would make the consumer give up at once.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- p.Consume(ctx, testEvent()) }()
		var err error
		select {
		case <-logs.seen("export failed, retrying", ""): // now in the hour-long backoff
			cancel()
			err = <-done
		case err = <-done:
			t.Fatalf("Consume returned before retrying: %v", err)
		}
		if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "Unavailable") {
			t.Fatalf("Consume = %v, want context.Canceled after Unavailable", err)
		}
	})
}

func TestPartialSuccess(t *testing.T) {
	t.Run("a partial rejection is logged, not an error", func(t *testing.T) {
		var logs bytes.Buffer
		f := startFakeCollector(t, nil, reply{rejected: 1, message: "one profile too old"})
		p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
		if err := p.Consume(testCtx(t), testEvent()); err != nil {
			t.Fatalf("Consume = %v, want nil for a partial rejection", err)
		}
		if !strings.Contains(logs.String(), "one profile too old") || !strings.Contains(logs.String(), `"rejected_profiles":1`) {
			t.Errorf("logs do not report the rejection: %s", logs.String())
		}
	})
	t.Run("rejecting every profile is an error", func(t *testing.T) {
		f := startFakeCollector(t, nil, reply{rejected: 6, message: "all bad"})
		p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true})
		if err := p.Consume(testCtx(t), testEvent()); err == nil || !strings.Contains(err.Error(), "all bad") {
			t.Fatalf("Consume = %v, want an error with the server's message", err)
		}
	})
	t.Run("rejecting every data point is an error", func(t *testing.T) {
		f := startFakeCollector(t, nil, reply{rejected: 6, message: "no metrics today"})
		m := newTestMetrics(t, Config{Endpoint: f.endpoint, Insecure: true})
		if err := m.Consume(testCtx(t), testMetrics()); err == nil || !strings.Contains(err.Error(), "no metrics today") {
			t.Fatalf("Consume = %v, want an error with the server's message", err)
		}
	})
}

const secretToken = "Bearer s3cr3t-t0ken"

func TestHeadersAreSentAndNeverLogged(t *testing.T) {
	var logs bytes.Buffer
	f := startFakeCollector(t, nil, reply{err: unavailable()}, reply{rejected: 1, message: "partial"})
	cfg := fastRetries(Config{
		Endpoint: f.endpoint, Insecure: true,
		Headers: map[string]string{"Authorization": secretToken, "X-Scope-OrgID": "tenant-1"},
		Logger:  slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	p := newTestProfiles(t, cfg)
	if err := p.Consume(testCtx(t), testEvent()); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	headers := f.headers
	f.mu.Unlock()
	if len(headers) != 2 {
		t.Fatalf("%d calls, want 2", len(headers))
	}
	for i, md := range headers {
		if got := md.Get("authorization"); len(got) != 1 || got[0] != secretToken {
			t.Errorf("call %d: authorization %q, want the token", i, got)
		}
		if got := md.Get("x-scope-orgid"); len(got) != 1 || got[0] != "tenant-1" {
			t.Errorf("call %d: x-scope-orgid %q, want tenant-1", i, got)
		}
		if ua := md.Get("user-agent"); len(ua) == 0 || !strings.HasPrefix(ua[0], "kprof-agent/") {
			t.Errorf("call %d: user-agent %q, want kprof-agent/...", i, ua)
		}
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("no retry log: %s", logs.String())
	}
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "cfg", cfg, "headers", cfg.Headers)
	for _, s := range []string{logs.String(), fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v %s", cfg.Headers, cfg.Headers)} {
		if strings.Contains(s, "s3cr3t") {
			t.Errorf("the token leaked: %s", s)
		}
	}
}

func TestTLS(t *testing.T) {
	pki := newTestPKI(t)
	t.Run("a client certificate and the CA make a verified connection", func(t *testing.T) {
		f := startFakeCollector(t, pki.serverCreds(t))
		cfg := Config{Endpoint: f.endpoint, CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, ServerName: "collector.test"}
		p := newTestProfiles(t, cfg)
		if err := p.Consume(testCtx(t), testEvent()); err != nil {
			t.Fatal(err)
		}
		m := newTestMetrics(t, cfg)
		if err := m.Consume(testCtx(t), testMetrics()); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.profiles) != 1 || len(f.metrics) != 1 || len(f.peers) != 2 || f.peers[0] != "kprof-agent" {
			t.Errorf("accepted %d profiles, %d metrics from peers %q; want one each from kprof-agent", len(f.profiles), len(f.metrics), f.peers)
		}
	})
	t.Run("the IP of the endpoint is verified without ServerName", func(t *testing.T) {
		f := startFakeCollector(t, pki.serverCreds(t))
		p := newTestProfiles(t, Config{Endpoint: f.endpoint, CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey})
		if err := p.Consume(testCtx(t), testEvent()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a server the CA did not sign is refused", func(t *testing.T) {
		f := startFakeCollector(t, pki.serverCreds(t))
		other := newTestPKI(t)
		// MaxElapsed leaves a loaded machine time for one whole handshake: the
		// refusal is an Unavailable, retried until MaxElapsed, and the error keeps it.
		p := newTestProfiles(t, fastRetries(Config{Endpoint: f.endpoint, CAFile: other.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey, MaxElapsed: 2 * time.Second}))
		err := p.Consume(testCtx(t), testEvent())
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Consume = %v, want a certificate error", err)
		}
		if _, got, _ := f.snapshot(); len(got) != 0 {
			t.Errorf("%d exports accepted over an unverified connection", len(got))
		}
	})
	t.Run("plaintext to a TLS server fails", func(t *testing.T) {
		f := startFakeCollector(t, pki.serverCreds(t))
		p := newTestProfiles(t, fastRetries(Config{Endpoint: f.endpoint, Insecure: true, MaxElapsed: 100 * time.Millisecond}))
		if err := p.Consume(testCtx(t), testEvent()); err == nil {
			t.Fatal("Consume succeeded in plaintext against a TLS server")
		}
	})
}

func TestGzipCompression(t *testing.T) {
	for _, c := range []string{"gzip", "none"} {
		t.Run(c, func(t *testing.T) {
			f := startFakeCollector(t, nil)
			p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true, Compression: c})
			if err := p.Consume(testCtx(t), testEvent()); err != nil {
				t.Fatal(err)
			}
			want := c
			if c == "none" {
				want = ""
			}
			f.mu.Lock()
			defer f.mu.Unlock()
			if len(f.encoding) != 1 || f.encoding[0] != want || len(f.profiles) != 1 {
				t.Errorf("encodings %q with %d profiles accepted, want [%q] and 1", f.encoding, len(f.profiles), want)
			}
		})
	}
}

func TestLargeEventsAreSplitByProcess(t *testing.T) {
	ev := &profile.Event{EventName: "cpu-clock", Period: 1e7, Start: testStart, End: testEnd}
	long := strings.Repeat("x", 1024)
	var want uint64
	for pid := int32(1); pid <= 200; pid++ {
		for i := range 4 {
			ev.Samples = append(ev.Samples, profile.Sample{PID: pid, TID: pid, Count: uint64(i + 1), CPUTime: time.Duration(i+1) * 1e7,
				Labels: map[string]string{"comm": "p" + fmt.Sprint(pid)},
				Frames: []profile.Frame{{Address: uint64(i), Function: fmt.Sprintf("%s_%d_%d", long, pid, i)}}})
			want += uint64(i + 1)
		}
	}
	f := startFakeCollector(t, nil)
	p := newTestProfiles(t, Config{Endpoint: f.endpoint, Insecure: true, MaxRequestBytes: MinMaxRequestBytes})
	if err := p.Consume(testCtx(t), ev); err != nil {
		t.Fatal(err)
	}
	_, got, _ := f.snapshot()
	if len(got) < 2 {
		t.Fatalf("%d requests, want the event split", len(got))
	}
	if tot := totals(got...); tot["samples/count"] != int64(want) {
		t.Errorf("samples/count %d over %d requests, want %d", tot["samples/count"], len(got), want)
	}
	resources := 0
	for _, pd := range got {
		resources += pd.ResourceProfiles().Len()
	}
	if resources != 200 {
		t.Errorf("%d resources over the requests, want 200", resources)
	}
}

func TestMetricsExportsTheReading(t *testing.T) {
	f := startFakeCollector(t, nil)
	m := newTestMetrics(t, Config{Endpoint: f.endpoint, Insecure: true})
	if m.Name() != "otlp-metrics" {
		t.Errorf("Name() = %q", m.Name())
	}
	if err := m.Consume(testCtx(t), testMetrics()); err != nil {
		t.Fatal(err)
	}
	if err := m.Consume(testCtx(t), &profile.Metrics{Time: testEnd}); err != nil {
		t.Fatal(err)
	}
	calls, _, got := f.snapshot()
	if calls != 1 || len(got) != 1 || got[0].DataPointCount() != 6 {
		t.Fatalf("%d calls, %d accepted, want one export of 6 points", calls, len(got))
	}
	cpu := metricsByName(got[0])[profile.ContainerCPUTime]
	if v := cpu.Sum().DataPoints().At(0).DoubleValue(); v != 12.5 {
		t.Errorf("%s = %v, want 12.5", cpu.Name(), v)
	}
}

func TestShutdown(t *testing.T) {
	f := startFakeCollector(t, nil)
	p, err := NewProfiles(Config{Endpoint: f.endpoint, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(Config{Endpoint: f.endpoint, Insecure: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown before any Consume = %v", err)
	}
	if err := p.Consume(testCtx(t), testEvent()); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if err := p.Shutdown(context.Background()); err != nil {
				t.Errorf("Shutdown = %v", err)
			}
		})
	}
	wg.Wait()
	if err := p.Consume(testCtx(t), testEvent()); err == nil || !strings.Contains(err.Error(), "shutdown") {
		t.Errorf("Consume after Shutdown = %v, want an error", err)
	}
	if err := m.Consume(testCtx(t), testMetrics()); err == nil {
		t.Error("metrics Consume after Shutdown succeeded")
	}
	if calls, _, _ := f.snapshot(); calls != 1 {
		t.Errorf("%d calls, want only the one before Shutdown", calls)
	}
}
