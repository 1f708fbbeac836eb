package spool

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestPutThenUpload(t *testing.T) {
	remote := newFakeRemote("bucket")
	rec := newRecorder()
	metrics, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Remote: remote, Metrics: metrics}
	rec.hook(&cfg)
	s := newSpool(t, cfg)

	want := map[string][]byte{
		"shop/checkout/a_cpu.pb.gz":  profile(1, 1),
		"shop/checkout/b_heap.pb.gz": profile(2, 1000),
		"shop/checkout/c_cpu.pb.gz":  profile(3, 64<<10),
	}
	ks := []string{"shop/checkout/a_cpu.pb.gz", "shop/checkout/b_heap.pb.gz", "shop/checkout/c_cpu.pb.gz"}
	// Two before Start (replayed from the index), one while running.
	put(t, s, ks[0], want[ks[0]])
	put(t, s, ks[1], want[ks[1]])
	start(t, s)
	put(t, s, ks[2], want[ks[2]])
	flush(t, s)

	remote.checkDelivered(t, want)
	remote.mu.Lock()
	for _, k := range ks {
		if got, want := metaJSON(t, remote.objects[k].meta), metaJSON(t, testMeta(k)); got != want {
			t.Errorf("remote meta of %s = %s, want %s", k, got, want)
		}
	}
	remote.mu.Unlock()
	rec.checkUploaded(t, ks)
	if n, b := s.Pending(); n != 0 || b != 0 {
		t.Errorf("Pending() = %d entries, %d bytes after Flush, want 0, 0", n, b)
	}
	if files := spoolFiles(t, s.cfg.Dir); len(files) != 0 {
		t.Errorf("spool directory still holds %v after Flush", files)
	}
	if got := testutil.ToFloat64(metrics.uploads.WithLabelValues(remote.String(), "success")); got != 3 {
		t.Errorf("kprof_spool_uploads_total{result=success} = %v, want 3", got)
	}
	if got := testutil.ToFloat64(metrics.uploads.WithLabelValues(remote.String(), "failure")); got != 0 {
		t.Errorf("kprof_spool_uploads_total{result=failure} = %v, want 0", got)
	}
	if err := s.Health(); err != nil {
		t.Errorf("Health() = %v after successful uploads", err)
	}
	if got, want := s.String(), "spool(fake://bucket)"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestPutIsDurable(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		key     string
		data    []byte
		wantErr error  // errors.Is
		wantMsg string // in the error
	}{
		{name: "after Put returns the data and sidecar are complete on disk", ctx: context.Background(), key: "ns/svc/p_cpu.pb.gz", data: profile(7, 4096)},
		{name: "an empty profile is spooled like any other", ctx: context.Background(), key: "ns/svc/empty_cpu.pb.gz", data: []byte{}},
		{name: "a Put with a cancelled ctx leaves nothing", ctx: cancelled, key: "ns/svc/p_cpu.pb.gz", data: profile(7, 4096), wantErr: context.Canceled},
		{name: "a Put with an empty key is refused", ctx: context.Background(), key: "", data: profile(7, 10), wantMsg: "key is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
			err := s.Put(tt.ctx, tt.key, tt.data, testMeta(tt.key))
			if tt.wantErr != nil || tt.wantMsg != "" {
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Put() = %v, want an error (%v, %q)", err, tt.wantErr, tt.wantMsg)
				}
				if files := spoolFiles(t, s.cfg.Dir); len(files) != 0 {
					t.Errorf("a refused Put left %v", files)
				}
				if n, _ := s.Pending(); n != 0 {
					t.Errorf("Pending() = %d after a refused Put", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			files := spoolFiles(t, s.cfg.Dir)
			ids := entryIDs(t, s.cfg.Dir)
			id, ok := ids[tt.key]
			if !ok || len(files) != 2 || !slices.Contains(files, id+dataSuffix) {
				t.Fatalf("spool directory holds %v, want %s.data and %s.json", files, id, id)
			}
			data, err := os.ReadFile(filepath.Join(s.cfg.Dir, id+dataSuffix))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(data, tt.data) {
				t.Errorf("data file has %d bytes that differ from the %d put", len(data), len(tt.data))
			}
			raw, err := os.ReadFile(filepath.Join(s.cfg.Dir, id+sidecarSuffix))
			if err != nil {
				t.Fatal(err)
			}
			var sc sidecar
			if err := json.Unmarshal(raw, &sc); err != nil {
				t.Fatalf("decode sidecar: %v", err)
			}
			sum := sha256.Sum256(tt.data)
			if sc.Version != 1 || sc.Key != tt.key || sc.Size != int64(len(tt.data)) ||
				sc.SHA256 != hex.EncodeToString(sum[:]) || sc.EnqueuedAt.IsZero() {
				t.Errorf("sidecar = %s", raw)
			}
			if got, want := metaJSON(t, sc.Meta), metaJSON(t, testMeta(tt.key)); got != want {
				t.Errorf("sidecar meta = %s, want %s", got, want)
			}
			if n, b := s.Pending(); n != 1 || b != int64(len(tt.data)) {
				t.Errorf("Pending() = %d, %d; want 1, %d", n, b, len(tt.data))
			}
		})
	}
}

func TestPutDoesNotShareTheCallersLabels(t *testing.T) {
	remote := newFakeRemote("bucket")
	s := newSpool(t, Config{Remote: remote})
	meta := testMeta("k")
	if err := s.Put(context.Background(), "k", profile(1, 10), meta); err != nil {
		t.Fatal(err)
	}
	meta.Labels["team"] = "changed after Put"
	start(t, s)
	flush(t, s)
	remote.mu.Lock()
	defer remote.mu.Unlock()
	if got := remote.objects["k"].meta.Labels["team"]; got != "payments" {
		t.Errorf("uploaded label team = %q, want the value at Put time", got)
	}
}
