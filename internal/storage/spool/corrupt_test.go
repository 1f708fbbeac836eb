package spool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestCorruptEntriesAreEvictedAndOthersDelivered(t *testing.T) {
	const victim, healthy = "corrupt/victim.pb.gz", "corrupt/healthy.pb.gz"
	tests := []struct {
		name string
		// damage changes the victim's files, named by path without suffix.
		damage func(t *testing.T, base string)
		// wantKey is the key OnEvicted reports: empty when the sidecar is lost.
		wantKey string
	}{
		{
			name:    "a flipped byte in the data is caught by its checksum before upload",
			wantKey: victim,
			damage: func(t *testing.T, base string) {
				b := mustRead(t, base+dataSuffix)
				b[len(b)/2] ^= 0x01
				mustWrite(t, base+dataSuffix, b)
			},
		},
		{
			name:    "a truncated sidecar loses the key",
			wantKey: "",
			damage: func(t *testing.T, base string) {
				b := mustRead(t, base+sidecarSuffix)
				mustWrite(t, base+sidecarSuffix, b[:len(b)/2])
			},
		},
		{
			name:    "a missing sidecar loses the key",
			wantKey: "",
			damage:  func(t *testing.T, base string) { mustRemove(t, base+sidecarSuffix) },
		},
		{
			name:    "a missing data file is evicted with its key",
			wantKey: victim,
			damage:  func(t *testing.T, base string) { mustRemove(t, base+dataSuffix) },
		},
		{
			name:    "a truncated data file is evicted with its key",
			wantKey: victim,
			damage: func(t *testing.T, base string) {
				b := mustRead(t, base+dataSuffix)
				mustWrite(t, base+dataSuffix, b[:len(b)-1])
			},
		},
		{
			name:    "a sidecar with an invalid checksum loses the key",
			wantKey: "",
			damage: func(t *testing.T, base string) {
				mustWrite(t, base+sidecarSuffix, []byte(`{"version":1,"key":"x","size":100,"sha256":"zz","enqueuedAt":"2026-01-01T00:00:00Z"}`))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "spool")
			first := newSpool(t, Config{Dir: dir, Remote: newFakeRemote("bucket")})
			put(t, first, victim, profile(1, 100))
			put(t, first, healthy, profile(2, 100))
			if err := first.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			tt.damage(t, filepath.Join(dir, entryIDs(t, dir)[victim]))

			remote := newFakeRemote("bucket")
			rec := newRecorder()
			metrics, err := NewMetrics(prometheus.NewRegistry())
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{Dir: dir, Remote: remote, Metrics: metrics}
			rec.hook(&cfg)
			second := newSpool(t, cfg)
			start(t, second)
			flush(t, second)

			evs := rec.evictions()
			if len(evs) != 1 || evs[0].key != tt.wantKey || evs[0].reason != ReasonCorrupt {
				t.Errorf("evictions = %+v, want one %q eviction of %q", evs, ReasonCorrupt, tt.wantKey)
			}
			if got := testutil.ToFloat64(metrics.evictions.WithLabelValues(remote.String(), ReasonCorrupt)); got != 1 {
				t.Errorf("kprof_spool_evictions_total{reason=corrupt} = %v, want 1", got)
			}
			remote.checkDelivered(t, map[string][]byte{healthy: profile(2, 100)})
			if files := spoolFiles(t, dir); len(files) != 0 {
				t.Errorf("spool directory still holds %v", files)
			}
		})
	}
}

func TestNewRemovesStaleTemporaryFilesAndKeepsOthers(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	mustWrite(t, filepath.Join(dir, tempPrefix+"0123456789abcdef"), []byte("half a profile"))
	mustWrite(t, filepath.Join(dir, "README"), []byte("not ours"))
	rec := newRecorder()
	cfg := Config{Dir: dir, Remote: newFakeRemote("bucket")}
	rec.hook(&cfg)
	s := newSpool(t, cfg)
	if files := spoolFiles(t, dir); !slices.Equal(files, []string{"README"}) {
		t.Errorf("spool directory holds %v, want only README", files)
	}
	if evs := rec.evictions(); len(evs) != 0 {
		t.Errorf("evictions = %v, want none: a temporary file was never acknowledged", evs)
	}
	if n, _ := s.Pending(); n != 0 {
		t.Errorf("Pending() = %d, want 0", n)
	}
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustWrite(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustRemove(t *testing.T, name string) {
	t.Helper()
	if err := os.Remove(name); err != nil {
		t.Fatal(err)
	}
}
