package capture

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/storage/fs"
)

// fileOf returns the path a file:// location names.
func fileOf(t *testing.T, loc string) string {
	t.Helper()
	u, err := url.Parse(loc)
	if err != nil || u.Scheme != "file" {
		t.Fatalf("location %q is not a file:// URL (%v)", loc, err)
	}
	return u.Path
}

func TestCaptureReportsWhereEachProfileIsStoredAndItsDigest(t *testing.T) {
	srv := newPprofTarget(t, nil)
	store, err := fs.New(fs.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := startEngine(t, Config{})
	results := e.Capture(context.Background(), Request{
		Group: "g", Target: srv.target("adhoc"), Reason: "incident 4711",
		Policy: Policy{Types: []ProfileType{TypeHeap, TypeGoroutine}, Store: store},
	})
	if len(results) != 2 {
		t.Fatalf("Capture returned %d results, want 2", len(results))
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("%s: %v", r.Type, r.Err)
		}
		data, err := os.ReadFile(fileOf(t, r.Location))
		if err != nil {
			t.Fatalf("%s: the location %s does not name the stored file: %v", r.Type, r.Location, err)
		}
		sum := sha256.Sum256(data)
		if r.SHA256 != hex.EncodeToString(sum[:]) || r.Bytes != len(data) {
			t.Errorf("%s: sha256 %s size %d, the stored file has %x and %d bytes", r.Type, r.SHA256, r.Bytes, sum, len(data))
		}
		if !strings.HasSuffix(r.Location, r.Key) || r.Reason != "incident 4711" {
			t.Errorf("%s: location %s key %s reason %q", r.Type, r.Location, r.Key, r.Reason)
		}
	}
}

func TestCaptureOfAKnownTargetWithResetSchedulePushesItsNextRound(t *testing.T) {
	srv := newPprofTarget(t, nil)
	store := &memStore{}
	e, rec := startEngine(t, Config{})
	p := Policy{Types: []ProfileType{TypeGoroutine}, Interval: time.Hour, Store: store}
	e.Sync("g", p, []Target{srv.target("a")})
	results := e.Capture(context.Background(), Request{Group: "g", Target: srv.target("a"), Policy: p, Reason: "threshold: x", ResetSchedule: true})
	if len(results) != 1 || results[0].Err != nil {
		t.Fatalf("Capture = %s, want one stored profile", describe(results))
	}
	if got := rec.snapshot(); len(got) != 1 {
		t.Errorf("results reported: %s, want only the requested one", describe(got))
	}
}

func gzipped(t *testing.T, p *profile.Profile) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := p.Write(&b); err != nil { // Write gzips
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestStoreProfile(t *testing.T) {
	good := gzipped(t, &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"}, Period: 10_000_000,
	})
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 1<<20))
	zw.Close()
	tests := []struct {
		name       string
		data       []byte
		wantReason string
	}{
		{name: "a pprof profile is stored unchanged with its digest", data: good},
		{name: "bytes that are not pprof are refused", data: []byte("hello"), wantReason: FailureNotPprof},
		{name: "a profile past the size limit is refused", data: bomb.Bytes(), wantReason: FailureTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store, err := fs.New(fs.Config{Dir: t.TempDir()})
			if err != nil {
				t.Fatal(err)
			}
			e, rec := startEngine(t, Config{MaxProfileBytes: 64 << 10, MaxDecompressedBytes: 512 << 10})
			start := time.Now().Add(-30 * time.Second)
			tg := Target{ID: "uid", Meta: Target{}.Meta}
			tg.Meta.Namespace, tg.Meta.Pod = "ns", "p"
			r := e.StoreProfile(context.Background(), "g", tg, Policy{Store: store}, "threshold: cpu", Profile{
				Type: "ebpf-cpu", Data: tt.data, Start: start, Duration: 40 * time.Second,
			})
			if len(rec.snapshot()) != 1 {
				t.Errorf("reported %d results, want 1", len(rec.snapshot()))
			}
			if tt.wantReason != "" {
				if r.Err == nil || r.FailureReason != tt.wantReason {
					t.Fatalf("err %v reason %q, want %s", r.Err, r.FailureReason, tt.wantReason)
				}
				return
			}
			if r.Err != nil {
				t.Fatal(r.Err)
			}
			data, err := os.ReadFile(fileOf(t, r.Location))
			if err != nil || !bytes.Equal(data, tt.data) {
				t.Fatalf("stored file %s: %v (equal %v)", r.Location, err, bytes.Equal(data, tt.data))
			}
			sum := sha256.Sum256(tt.data)
			if r.SHA256 != hex.EncodeToString(sum[:]) || !strings.Contains(r.Key, "ebpf-cpu") {
				t.Errorf("sha256 %s key %s", r.SHA256, r.Key)
			}
		})
	}
}
