package usage

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

const (
	uid1  = "6f2d1b0c-1e2f-4a3b-9c8d-7e6f5a4b3c2d"
	uid1U = "6f2d1b0c_1e2f_4a3b_9c8d_7e6f5a4b3c2d" // as the systemd driver writes it
	uid2  = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	uid2U = "0a1b2c3d_4e5f_4a6b_8c7d_9e0f1a2b3c4d"
	cid1  = "1111111111111111111111111111111111111111111111111111111111111111"
	cid2  = "2222222222222222222222222222222222222222222222222222222222222222"
	cid3  = "3333333333333333333333333333333333333333333333333333333333333333"
	node  = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"
)

var t0 = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

// writeTree writes files (path relative to root → content) under root.
func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for rel, content := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// v2Files are a v2 cgroup's value files: CPU in microseconds, memory in bytes.
func v2Files(dir string, usec, bytes uint64) map[string]string {
	return map[string]string{
		dir + "/cpu.stat":       fmt.Sprintf("usage_usec %d\nuser_usec %d\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\n", usec, usec),
		dir + "/memory.current": fmt.Sprintf("%d\n", bytes),
	}
}

// v1Files are a v1 cgroup's value files in the cpuacct and memory hierarchies.
func v1Files(cpuDir, memDir, rel string, ns, bytes uint64) map[string]string {
	return map[string]string{
		cpuDir + "/" + rel + "/cpuacct.usage":         fmt.Sprintf("%d\n", ns),
		memDir + "/" + rel + "/memory.usage_in_bytes": fmt.Sprintf("%d\n", bytes),
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// fakePods is a PodLookup over fixed pods: what the attribute package's informer would know.
type fakePods struct {
	pods       map[string][2]string // pod UID → name, namespace
	containers map[string][2]string // container ID → pod UID, container name
}

func (f fakePods) LookupPod(podUID, containerID string) (name, namespace, container string, ok bool) {
	if c, ok := f.containers[containerID]; ok && containerID != "" {
		p := f.pods[c[0]]
		return p[0], p[1], c[1], true
	}
	if p, ok := f.pods[podUID]; ok && podUID != "" {
		return p[0], p[1], "", true
	}
	return "", "", "", false
}

// webPods knows pod uid1 (shop/web, container cid1 "app") and nothing else.
var webPods = fakePods{
	pods:       map[string][2]string{uid1: {"web", "shop"}},
	containers: map[string][2]string{cid1: {uid1, "app"}},
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func cpuPoint(name string, seconds float64, start time.Time, l map[string]string) profile.Point {
	return profile.Point{Name: name, Kind: profile.Counter, Unit: "s", Value: seconds, Start: start, Labels: l}
}

func memPoint(name string, bytes float64, l map[string]string) profile.Point {
	return profile.Point{Name: name, Kind: profile.Gauge, Unit: "By", Value: bytes, Labels: l}
}

func newReader(t *testing.T, cfg Config) *Reader {
	t.Helper()
	if cfg.Publish == nil {
		cfg.Publish = func(*profile.Metrics) {}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return r
}

func readOnce(t *testing.T, r *Reader, now time.Time) *profile.Metrics {
	t.Helper()
	m, err := r.ReadOnce(now)
	if err != nil {
		t.Fatalf("ReadOnce(%s): %v", now, err)
	}
	return m
}

func checkPoints(t *testing.T, got, want []profile.Point) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "got %d points:\n", len(got))
	for _, p := range got {
		fmt.Fprintf(&b, "  %+v\n", p)
	}
	fmt.Fprintf(&b, "want %d points:\n", len(want))
	for _, p := range want {
		fmt.Fprintf(&b, "  %+v\n", p)
	}
	t.Error(b.String())
}

// logRecorder is a slog.Handler that keeps the records of level Warn and above.
type logRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (l *logRecorder) Enabled(_ context.Context, lvl slog.Level) bool { return lvl >= slog.LevelWarn }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.records = append(l.records, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

// lines renders the kept records as "msg key=value ..." lines.
func (l *logRecorder) lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, r := range l.records {
		var b bytes.Buffer
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
			return true
		})
		out = append(out, b.String())
	}
	return out
}
