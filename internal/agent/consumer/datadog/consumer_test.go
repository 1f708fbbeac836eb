package datadog

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

const testKey = "0123456789abcdef-secret-api-key"

var testStart = time.Date(2026, 11, 23, 6, 0, 0, 123456789, time.UTC)

func testEvent() *profile.Event {
	app := &profile.Mapping{Start: 0x400000, Limit: 0x800000, File: "/app/server", BuildID: "abc"}
	return &profile.Event{
		Config: "web-cpu", EventName: "cpu-clock", Period: 10_000_000,
		Start: testStart, End: testStart.Add(10 * time.Second),
		Labels: map[string]string{"node": "node-1", "cluster": "c1"},
		Samples: []profile.Sample{{
			PID: 7, TID: 8, Count: 2, CPUTime: 20 * time.Millisecond,
			Labels: map[string]string{"pod": "web-0", "namespace": "prod"},
			Frames: []profile.Frame{
				{Address: 0xffffffff81000000, Kernel: true, Function: "do_syscall_64"},
				{Address: 0x401000, Function: "main.work", File: "/src/main.go", Line: 12, Mapping: app},
			},
		}},
	}
}

// upload is what the test server decoded from one request.
type upload struct {
	header  http.Header
	event   map[string]any
	profile *googlepprof.Profile
}

// intake is an httptest server that decodes uploads exactly as Datadog's
// profilers send them and answers with the statuses in order (then 200).
type intake struct {
	t        *testing.T
	srv      *httptest.Server
	mu       sync.Mutex
	requests int
	statuses []int
	uploads  []upload
}

func newIntake(t *testing.T, statuses ...int) *intake {
	in := &intake{t: t, statuses: statuses}
	in.srv = httptest.NewServer(http.HandlerFunc(in.serve))
	t.Cleanup(in.srv.Close)
	return in
}

func (in *intake) serve(w http.ResponseWriter, r *http.Request) {
	in.mu.Lock()
	in.requests++
	status := http.StatusOK
	if len(in.statuses) > 0 {
		status, in.statuses = in.statuses[0], in.statuses[1:]
	}
	in.mu.Unlock()
	if status != http.StatusOK {
		w.WriteHeader(status)
		fmt.Fprintf(w, "status %d; you sent key %s", status, r.Header.Get("DD-API-KEY"))
		return
	}
	u, err := decodeUpload(r)
	if err != nil {
		in.t.Errorf("decode upload: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	in.mu.Lock()
	in.uploads = append(in.uploads, u)
	in.mu.Unlock()
}

func decodeUpload(r *http.Request) (upload, error) {
	u := upload{header: r.Header.Clone()}
	if r.Method != http.MethodPost {
		return u, fmt.Errorf("method %s", r.Method)
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return u, fmt.Errorf("content type %q: %v", r.Header.Get("Content-Type"), err)
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return u, err
	}
	parts := map[string][]byte{}
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return u, err
		}
		data, err := io.ReadAll(p)
		if err != nil {
			return u, err
		}
		switch name := p.FormName(); name {
		case "event":
			if p.FileName() != "event.json" || p.Header.Get("Content-Type") != "application/json" {
				return u, fmt.Errorf("event part: filename %q content type %q", p.FileName(), p.Header.Get("Content-Type"))
			}
			if err := json.Unmarshal(data, &u.event); err != nil {
				return u, fmt.Errorf("event.json: %w", err)
			}
		default:
			if p.FileName() != name || p.Header.Get("Content-Type") != "application/octet-stream" {
				return u, fmt.Errorf("part %q: filename %q content type %q", name, p.FileName(), p.Header.Get("Content-Type"))
			}
		}
		parts[p.FormName()] = data
	}
	if u.event == nil {
		return u, fmt.Errorf("no event part")
	}
	atts, _ := u.event["attachments"].([]any)
	if len(atts) != 1 || atts[0] != "cpu.pprof" || len(parts) != 2 {
		return u, fmt.Errorf("attachments %v, parts %d", u.event["attachments"], len(parts))
	}
	u.profile, err = googlepprof.ParseData(parts["cpu.pprof"])
	if err != nil {
		return u, fmt.Errorf("cpu.pprof: %w", err)
	}
	return u, nil
}

func (in *intake) counts() (requests int, uploads []upload) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.requests, slices.Clone(in.uploads)
}

// newTestConsumer returns an agent-mode consumer posting to in, with short retry delays.
func newTestConsumer(t *testing.T, in *intake, logs io.Writer) *Consumer {
	t.Helper()
	c, err := New(Config{
		AgentURL: in.srv.URL + "/profiling/v1/input",
		Service:  "web", Env: "prod", Version: "1.2.3",
		Tags:           []string{"team:perf"},
		RetryBaseDelay: time.Millisecond, RetryMaxDelay: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Shutdown(context.Background()) })
	return c
}

// withAgentlessKey switches c to agentless mode against in, as Validate
// would for Site, since the test server cannot be intake.profile.<site>.
func withAgentlessKey(c *Consumer, in *intake) {
	c.cfg.url = in.srv.URL + "/api/v2/profile"
	key := Secret(testKey)
	c.cfg.apiKey = &key
}

func TestConsumeUploadsInDatadogIntakeFormat(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	if err := c.Consume(context.Background(), testEvent()); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	_, ups := in.counts()
	if len(ups) != 1 {
		t.Fatalf("got %d uploads, want 1", len(ups))
	}
	u := ups[0]
	if got := u.header.Get("DD-EVP-ORIGIN"); got != "kprof" {
		t.Errorf("DD-EVP-ORIGIN = %q", got)
	}
	if u.header.Get("DD-EVP-ORIGIN-VERSION") == "" {
		t.Error("DD-EVP-ORIGIN-VERSION missing")
	}
	if _, ok := u.header["Dd-Api-Key"]; ok {
		t.Error("agent mode sent DD-API-KEY")
	}
	for field, want := range map[string]string{
		"start":   testStart.Format(time.RFC3339Nano),
		"end":     testStart.Add(10 * time.Second).Format(time.RFC3339Nano),
		"family":  "native",
		"version": "4",
	} {
		if got := u.event[field]; got != want {
			t.Errorf("event.json %s = %v, want %q", field, got, want)
		}
	}
	tags := strings.Split(u.event["tags_profiler"].(string), ",")
	for _, want := range []string{"service:web", "env:prod", "version:1.2.3", "host:node-1", "pod_name:web-0", "kube_namespace:prod", "team:perf"} {
		if !slices.Contains(tags, want) {
			t.Errorf("tags_profiler %v lacks %q", tags, want)
		}
	}
	p := u.profile
	if len(p.Sample) != 1 || p.Sample[0].Value[0] != 2 || p.Sample[0].Value[1] != int64(20*time.Millisecond) {
		t.Fatalf("samples = %v", p.Sample)
	}
	if fn := p.Sample[0].Location[1].Line[0].Function.Name; fn != "main.work" {
		t.Errorf("user frame function = %q", fn)
	}
}

func TestConsumeUploadsOneProfilePerPod(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	ev := testEvent()
	other := ev.Samples[0]
	other.Labels = map[string]string{"pod": "db-0", "namespace": "data"}
	ev.Samples = append(ev.Samples, other)
	if err := c.Consume(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	_, ups := in.counts()
	if len(ups) != 2 {
		t.Fatalf("got %d uploads, want 2", len(ups))
	}
	if len(ev.Samples) != 2 || ev.Samples[0].Labels["pod"] != "web-0" {
		t.Error("Consume modified the event")
	}
	for i, pod := range []string{"pod_name:db-0", "pod_name:web-0"} {
		if tags := strings.Split(ups[i].event["tags_profiler"].(string), ","); !slices.Contains(tags, pod) {
			t.Errorf("upload %d tags %v lack %q", i, tags, pod)
		}
	}
}

func TestConsumeRetriesServerErrorsThenSucceeds(t *testing.T) {
	var logs bytes.Buffer
	in := newIntake(t, http.StatusServiceUnavailable, http.StatusInternalServerError)
	c := newTestConsumer(t, in, &logs)
	withAgentlessKey(c, in)
	if err := c.Consume(context.Background(), testEvent()); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	reqs, ups := in.counts()
	if reqs != 3 || len(ups) != 1 {
		t.Fatalf("got %d requests and %d profiles, want 3 and 1", reqs, len(ups))
	}
	if got := ups[0].header.Get("DD-API-KEY"); got != testKey {
		t.Errorf("agentless DD-API-KEY = %q", got)
	}
	if !strings.Contains(logs.String(), "retrying") {
		t.Errorf("retries not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), testKey) {
		t.Errorf("logs contain the API key: %s", logs.String())
	}
}

func TestConsumeGivesUpAfterMaxRetries(t *testing.T) {
	in := newIntake(t, 500, 500, 500, 500, 500)
	c := newTestConsumer(t, in, io.Discard)
	err := c.Consume(context.Background(), testEvent())
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want a 500 error", err)
	}
	if reqs, _ := in.counts(); reqs != 1+DefaultMaxRetries {
		t.Errorf("got %d requests, want %d", reqs, 1+DefaultMaxRetries)
	}
}

func TestConsumeDoesNotRetryClientErrorsNorLeakTheKey(t *testing.T) {
	var logs bytes.Buffer
	in := newIntake(t, http.StatusForbidden)
	c := newTestConsumer(t, in, &logs)
	withAgentlessKey(c, in)
	err := c.Consume(context.Background(), testEvent())
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("err = %v, want a 403 error", err)
	}
	if !strings.Contains(err.Error(), "you sent key [redacted]") {
		t.Errorf("err lacks the redacted body excerpt: %v", err)
	}
	if strings.Contains(err.Error(), testKey) || strings.Contains(logs.String(), testKey) {
		t.Errorf("API key leaked: err %v logs %s", err, logs.String())
	}
	if reqs, _ := in.counts(); reqs != 1 {
		t.Errorf("got %d requests, want 1", reqs)
	}
}

func TestConsumeRetriesNetworkErrors(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	var attempts atomic.Int32
	c.client = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if attempts.Add(1) == 1 {
			return nil, errors.New("connection reset by peer")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	if err := c.Consume(context.Background(), testEvent()); err != nil {
		t.Fatalf("Consume: %v", err)
	}
	if _, ups := in.counts(); len(ups) != 1 || attempts.Load() != 2 {
		t.Fatalf("got %d profiles in %d attempts, want 1 in 2", len(ups), attempts.Load())
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestShutdownIsIdempotentAndStopsConsume(t *testing.T) {
	c, err := New(Config{Service: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := c.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Consume(context.Background(), testEvent()); err == nil {
		t.Fatal("Consume after Shutdown returned no error")
	}
}

func TestConsumeWithoutSamplesUploadsNothing(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	if err := c.Consume(context.Background(), &profile.Event{}); err != nil {
		t.Fatal(err)
	}
	if reqs, _ := in.counts(); reqs != 0 {
		t.Errorf("got %d requests, want 0", reqs)
	}
}

func TestConsumeTagsEachUploadWithItsWorkloadsService(t *testing.T) {
	in := newIntake(t)
	c := newTestConsumer(t, in, io.Discard)
	c.cfg.Service, c.cfg.Version = "", "" // no --datadog-service: each workload's own
	ev := testEvent()
	ev.Samples[0].Labels = map[string]string{"pod": "web-0", "namespace": "prod",
		"service": "checkout", "service_namespace": "prod", "service_instance_id": "prod.web-0.app", "service_version": "2.4"}
	host := ev.Samples[0]
	host.Labels = map[string]string{"comm": "kprof-fidelity-", "exe": "/usr/local/bin/kprof-fidelity-workload"}
	ev.Samples = append(ev.Samples, host)
	if err := c.Consume(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	_, ups := in.counts()
	if len(ups) != 2 {
		t.Fatalf("got %d uploads, want 2 (the pod, the host process)", len(ups))
	}
	tests := []struct {
		name string
		up   upload
		want []string
	}{
		{"a host process is named by its whole executable name", ups[0], []string{"service:kprof-fidelity-workload"}},
		{"a pod's process has its pod's service and version", ups[1], []string{"service:checkout", "version:2.4", "pod_name:web-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := strings.Split(tt.up.event["tags_profiler"].(string), ",")
			for _, want := range tt.want {
				if !slices.Contains(tags, want) {
					t.Errorf("tags %v lack %q", tags, want)
				}
			}
		})
	}
	t.Run("--datadog-service overrides every workload's", func(t *testing.T) {
		c.cfg.Service = "node-wide"
		if err := c.Consume(context.Background(), ev); err != nil {
			t.Fatal(err)
		}
		_, ups := in.counts()
		for _, u := range ups[2:] {
			if tags := strings.Split(u.event["tags_profiler"].(string), ","); !slices.Contains(tags, "service:node-wide") {
				t.Errorf("tags %v lack service:node-wide", tags)
			}
		}
	})
}
