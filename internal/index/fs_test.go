package index

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	agentpprof "github.com/kprof/kprof/internal/agent/consumer/pprof"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/storage/fs"
)

func newFSIndex(t *testing.T, dir string) Index {
	t.Helper()
	x, err := New(context.Background(), Config{Store: dir})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func TestListReadsTheFSStoresSidecarsAndTheAgentsFiles(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	data := heapProfile(t)
	keys := put(t, st, "", data, testMetas())

	files, err := agentpprof.NewFiles(agentpprof.FilesConfig{Dir: filepath.Join(dir, "agent")})
	if err != nil {
		t.Fatal(err)
	}
	ev := &profile.Event{Config: "node-cpu", EventName: "cpu-clock", Period: 10_000_000, Start: t0.Add(3 * time.Minute),
		End: t0.Add(4 * time.Minute), Samples: []profile.Sample{{PID: 1, Count: 1, CPUTime: time.Millisecond,
			Frames: []profile.Frame{{Address: 0x401000, Function: "main.main"}}}}}
	if err := files.Consume(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	// Things that are not profiles: a temporary file, a README.
	for name, body := range map[string]string{".tmp-123": "x", "README.txt": "hello"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	x := newFSIndex(t, dir)
	all, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	want := append(slices.Clone(keys), "agent/pprof-node-cpu-20261207-140300.pb.gz")
	if !slices.Equal(ids(all), want) {
		t.Fatalf("listed %q, want %q (sorted by time)", ids(all), want)
	}
	first := all[0]
	if first.Namespace != "shop" || first.Service != "checkout" || first.Pod != "checkout-7d9" || first.Container != "app" ||
		first.Type != "cpu" || !first.CapturedAt.Equal(t0) || first.Duration != 30*time.Second || first.Trigger != TriggerSchedule ||
		first.Cluster != "eu-1" || first.Size != int64(len(data)) || first.Source != "sidecar" ||
		first.Location != filepath.Join(dir, keys[0]) || first.Error != "" {
		t.Errorf("first entry %+v", first)
	}
	if e := all[2]; e.Trigger != TriggerThreshold || e.Reason != "threshold: cpu 93% of request >= 80%" {
		t.Errorf("threshold entry: trigger %q reason %q", e.Trigger, e.Reason)
	}
	if e := all[3]; e.Source != "agent" || e.Config != "node-cpu" || !e.CapturedAt.Equal(t0.Add(3*time.Minute)) {
		t.Errorf("agent entry %+v", e)
	}

	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"a namespace", Filter{Namespace: "shop"}, keys},
		{"a service", Filter{Service: "cart"}, keys[2:]},
		{"a pod", Filter{Pod: "checkout-7d9"}, keys[:2]},
		{"a type", Filter{Type: "heap"}, keys[1:2]},
		{"the threshold trigger", Filter{Reason: "threshold"}, keys[2:]},
		{"a word of the reason", Filter{Reason: "CPU 93%"}, keys[2:]},
		{"a time range", Filter{From: t0.Add(time.Minute), To: t0.Add(2 * time.Minute)}, keys[1:2]},
		{"a start time", Filter{From: t0.Add(90 * time.Second)}, want[2:]},
	} {
		t.Run("a filter on "+tc.name+" selects its entries", func(t *testing.T) {
			got, err := x.List(t.Context(), tc.f)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids(got), tc.want) {
				t.Errorf("listed %q, want %q", ids(got), tc.want)
			}
		})
	}

	got, err := x.Open(t.Context(), keys[0], 0)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(data) {
		t.Error("Open returned other bytes than were stored")
	}
}

func TestListShowsABadSidecarAsAnEntrysError(t *testing.T) {
	dir := t.TempDir()
	k := "shop/checkout/2026-12-07/20261207T140000.000Z_checkout-7d9_cpu.pb.gz"
	if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(k)), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, k), heapProfile(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, k+".json"), []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	es, err := newFSIndex(t, dir).List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || !strings.Contains(es[0].Error, "metadata") || es[0].Service != "checkout" || es[0].Type != "cpu" {
		t.Fatalf("entries %+v, want one with an error and the key's metadata", es)
	}
}

func TestOpenRefusesHostileIDsAndBadProfiles(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "store")
	secret := filepath.Join(parent, "secret.pb.gz")
	for p, body := range map[string][]byte{
		secret:                             heapProfile(t),
		filepath.Join(dir, "ok.pb.gz"):     heapProfile(t),
		filepath.Join(dir, "zero.pb.gz"):   nil,
		filepath.Join(dir, "bad.pb.gz"):    []byte("\x1f\x8b not really gzip"),
		filepath.Join(dir, "a.pb.gz.json"): []byte("{}"),
	} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(secret, filepath.Join(dir, "link.pb.gz")); err != nil {
		t.Fatal(err)
	}
	x := newFSIndex(t, dir)
	for _, tc := range []struct {
		id   string
		want error
	}{
		{"../secret.pb.gz", ErrBadID},
		{"a/../../secret.pb.gz", ErrBadID},
		{secret, ErrBadID},
		{"%2e%2e/secret.pb.gz", ErrBadID},
		{"..%2fsecret.pb.gz", ErrBadID},
		{"%252e%252e/secret.pb.gz", ErrBadID},
		{`..\secret.pb.gz`, ErrBadID},
		{"C:/secret.pb.gz", ErrBadID},
		{"ok.pb.gz\x00", ErrBadID},
		{"a.pb.gz.json", ErrBadID},
		{"", ErrBadID},
		{"link.pb.gz", ErrNotFound},
		{"missing.pb.gz", ErrNotFound},
		{"zero.pb.gz", ErrEmpty},
		{"bad.pb.gz", ErrCorrupt},
	} {
		t.Run("id "+tc.id+" is refused", func(t *testing.T) {
			_, err := x.Open(t.Context(), tc.id, 0)
			if !errors.Is(err, tc.want) {
				t.Errorf("Open(%q) = %v, want %v", tc.id, err, tc.want)
			}
		})
	}
	t.Run("a profile over the limit is refused with its size", func(t *testing.T) {
		_, err := x.Open(t.Context(), "ok.pb.gz", 10)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "(10 bytes)") {
			t.Errorf("Open = %v, want ErrTooLarge naming the limit", err)
		}
	})
	if _, err := x.Open(t.Context(), "ok.pb.gz", 0); err != nil {
		t.Errorf("Open(ok.pb.gz) = %v", err)
	}
}

func TestStatDescribesOneProfileAsListDoes(t *testing.T) {
	dir := t.TempDir()
	st, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	keys := put(t, st, "", heapProfile(t), testMetas())
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	x := newFSIndex(t, dir)
	all, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		e, err := x.Stat(t.Context(), k)
		if err != nil {
			t.Fatalf("Stat(%q): %v", k, err)
		}
		if e != all[i] {
			t.Errorf("Stat(%q) = %+v, want the listed %+v", k, e, all[i])
		}
	}
	for id, want := range map[string]error{"../x.pb.gz": ErrBadID, "missing.pb.gz": ErrNotFound, "README.txt": ErrNotFound, "shop": ErrNotFound} {
		if _, err := x.Stat(t.Context(), id); !errors.Is(err, want) {
			t.Errorf("Stat(%q) = %v, want %v", id, err, want)
		}
	}
}

func TestOpenRefusesAGzipBombBeforeInflatingIt(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	chunk := make([]byte, 1<<20)
	for range 64 { // 64 MiB of zeros: about 64 KiB gzipped
		if _, err := zw.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bomb.pb.gz"), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	limit := int64(b.Len()) + 1 // the stored bytes are within the limit, their inflation is not
	_, err := newFSIndex(t, dir).Open(t.Context(), "bomb.pb.gz", limit)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "decompressed to more than") {
		t.Errorf("Open of a gzip bomb = %v, want ErrTooLarge saying it decompressed past the limit", err)
	}
}
