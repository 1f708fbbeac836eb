//go:build linux

package agent

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/agenttest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/profile"
)

// requireBPF skips the test when this process cannot sample with eBPF.
func requireBPF(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("needs root (CAP_BPF and CAP_PERFMON) to load the eBPF sampler: run make test as root")
	}
	s, err := bpf.Open(bpf.Config{Event: "cpu-clock", Frequency: 1})
	if err != nil {
		t.Fatalf("the eBPF sampler cannot run here: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// captureConsumer hands every event to a channel the test reads.
type captureConsumer struct {
	events   chan *profile.Event
	shutdown chan struct{}
}

func newCaptureConsumer() *captureConsumer {
	return &captureConsumer{events: make(chan *profile.Event, 4096), shutdown: make(chan struct{})}
}

func (c *captureConsumer) Name() string { return "capture" }

func (c *captureConsumer) Consume(ctx context.Context, ev *profile.Event) error {
	select {
	case c.events <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *captureConsumer) Shutdown(context.Context) error {
	close(c.shutdown)
	return nil
}

// waitEvent reads events until one satisfies want, failing after timeout. Every
// event read is passed to check first (nil: none), so a test can refuse an event
// that must not come.
func (c *captureConsumer) waitEvent(t *testing.T, timeout time.Duration, what string, check func(*profile.Event), want func(*profile.Event) bool) *profile.Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-c.events:
			if check != nil {
				check(ev)
			}
			if want(ev) {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no event %s within %s", what, timeout)
			return nil
		}
	}
}

func sampleCount(ev *profile.Event) uint64 {
	var n uint64
	for _, s := range ev.Samples {
		n += s.Count
	}
	return n
}

// logLines is a log destination whose JSON lines a test can wait for.
type logLines struct {
	mu     sync.Mutex
	lines  []map[string]any
	notify chan struct{}
	t      *testing.T
}

func newLogLines(t *testing.T) *logLines {
	return &logLines{notify: make(chan struct{}, 1), t: t}
}

func (l *logLines) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(bytes.NewReader(p))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	l.mu.Lock()
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			m = map[string]any{"unparsed": sc.Text()}
		}
		l.lines = append(l.lines, m)
	}
	l.mu.Unlock()
	select {
	case l.notify <- struct{}{}:
	default:
	}
	return len(p), nil
}

// waitLog waits for a log line, after the from-th, whose attributes include
// all of attrs, and returns its index.
func (l *logLines) waitLog(t *testing.T, from int, timeout time.Duration, attrs map[string]string) (int, map[string]any) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		l.mu.Lock()
		for i := from; i < len(l.lines); i++ {
			if matches(l.lines[i], attrs) {
				line := l.lines[i]
				l.mu.Unlock()
				return i, line
			}
		}
		l.mu.Unlock()
		select {
		case <-l.notify:
		case <-deadline.C:
			t.Fatalf("no log line with %v within %s", attrs, timeout)
		}
	}
}

func (l *logLines) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.lines)
}

func matches(line map[string]any, attrs map[string]string) bool {
	for k, v := range attrs {
		got, ok := line[k]
		if !ok {
			return false
		}
		if s, isStr := got.(string); isStr {
			if !strings.Contains(s, v) {
				return false
			}
			continue
		}
		b, _ := json.Marshal(got)
		if string(b) != v {
			return false
		}
	}
	return true
}

func testLogger(t *testing.T, l *logLines) *slog.Logger {
	var w io.Writer = l
	if testing.Verbose() {
		w = io.MultiWriter(l, os.Stderr)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// startBurner runs a shell that spins on a CPU until the test ends, so that
// every cpu-clock collector has samples (the agent excludes its own pid).
func startBurner(t *testing.T) int32 { return int32(agenttest.BusyProcess(t)) }

// writeFile replaces path atomically (a hidden temporary, then a rename), as
// a config author's tool would.
func writeFile(t *testing.T, path, content string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func seedConfig(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("collection", "testdata", "good-seed.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func plainConfig(name string, version int, event string) string {
	return "name: " + name + "\nversion: " + strconv.Itoa(version) + "\nspec:\n  event: " + event + "\n  frequency: 99\n  intervalSeconds: 1\n"
}

// metricValue reads a gauge or counter of reg by its labels; -1 when absent.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if got[k] != v {
					continue metric
				}
			}
			switch {
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}
