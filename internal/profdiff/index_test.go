package profdiff

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/testenv"
)

// store is a store written as kprof writes it and the index that reads it.
type store struct {
	name string
	put  storage.Store
	x    func(t *testing.T) index.Index
}

// stores are a local directory and a MinIO bucket.
func stores(t *testing.T) []store {
	t.Helper()
	dir := t.TempDir()
	fst, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.UseAsDefaultCredentials(t)
	sst, err := s3.New(t.Context(), s3.Config{Bucket: "profiles", Endpoint: m.Endpoint, Region: m.Region,
		Credentials: &s3.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	open := func(cfg index.Config) func(t *testing.T) index.Index {
		return func(t *testing.T) index.Index {
			x, err := index.New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			return x
		}
	}
	return []store{
		{"local store", fst, open(index.Config{Store: dir})},
		{"MinIO", sst, open(index.Config{Store: "s3://profiles/prod", S3Endpoint: m.Endpoint, S3Region: m.Region})},
	}
}

// putAll stores data under each meta as the store's user does (the default key
// layout, below prefix "prod" in S3) and returns the IDs.
func (s store) putAll(t *testing.T, data []byte, metas ...storage.Meta) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	prefix := ""
	if s.name == "MinIO" {
		prefix = "prod"
	}
	var ids []string
	for _, m := range metas {
		k := storage.RenderKey(storage.DefaultKeyTemplate, prefix, m)
		if err := s.put.Put(ctx, k, data, m); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		ids = append(ids, strings.TrimPrefix(k, "prod/"))
	}
	return ids
}

// realProfiles captures a 1 s CPU and a heap profile of the sample app with kprof's
// capture and returns their bytes.
func realProfiles(t *testing.T) (cpu, heap []byte) {
	t.Helper()
	dir := t.TempDir()
	startSampleApp(t).capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap)
	for _, f := range profileFiles(t, dir) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case strings.HasSuffix(f, "_cpu.pb.gz"):
			cpu = b
		case strings.HasSuffix(f, "_heap.pb.gz"):
			heap = b
		}
	}
	if cpu == nil || heap == nil {
		t.Fatalf("capture stored %v, want a cpu and a heap profile", profileFiles(t, dir))
	}
	return cpu, heap
}

func TestMergeReadsTheEntriesOfAStoresIndex(t *testing.T) {
	cpu, heap := realProfiles(t)
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	meta := func(typ string, minute int) storage.Meta {
		return storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: typ, Reason: "schedule",
			CapturedAt: at.Add(time.Duration(minute) * time.Minute), Duration: time.Second}
	}
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			heapIDs := s.putAll(t, heap, meta("heap", 0), meta("heap", 1), meta("heap", 2))
			s.putAll(t, cpu, meta("cpu", 3))
			x := s.x(t)

			t.Run("a selection of several types is refused naming them", func(t *testing.T) {
				_, err := SelectIndex(t.Context(), x, index.Filter{Service: "checkout"})
				if err == nil || !strings.Contains(err.Error(), "2 types (cpu, heap)") || !strings.Contains(err.Error(), "service=checkout") {
					t.Errorf("SelectIndex = %v, want an error naming the types cpu and heap and the filter", err)
				}
			})
			t.Run("a selection of nothing names the store and the filter", func(t *testing.T) {
				_, err := SelectIndex(t.Context(), x, index.Filter{Service: "cart", Type: "cpu"})
				if err == nil || !strings.Contains(err.Error(), "no profiles in "+x.String()+" match service=cart,type=cpu") {
					t.Errorf("SelectIndex = %v, want an error naming the store and the filter", err)
				}
			})
			t.Run("the heap profiles merge as the same files would", func(t *testing.T) {
				inputs, err := SelectIndex(t.Context(), x, index.Filter{Service: "checkout", Type: "heap"})
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, in := range inputs {
					got = append(got, in.Entry.ID)
				}
				if !slices.Equal(got, heapIDs) {
					t.Fatalf("selected %q, want %q", got, heapIDs)
				}
				var progress []int
				m, err := Merge(t.Context(), inputs, MergeConfig{Batch: 2, Progress: func(done, _ int) { progress = append(progress, done) }})
				if err != nil {
					t.Fatal(err)
				}
				if m.Inputs != 3 || m.Type != "heap" || !slices.Equal(progress, []int{1, 2, 3}) {
					t.Errorf("merged %d %s profiles with progress %v, want 3 heap profiles reported 1, 2, 3", m.Inputs, m.Type, progress)
				}
				f := filepath.Join(t.TempDir(), "heap.pb.gz")
				if err := os.WriteFile(f, heap, 0o644); err != nil {
					t.Fatal(err)
				}
				want, err := Merge(t.Context(), []Input{{Path: f}, {Path: f}, {Path: f}}, MergeConfig{})
				if err != nil {
					t.Fatal(err)
				}
				if g, w := totals(m.Profile), totals(want.Profile); !mapsEqual(g, w) {
					t.Errorf("merged totals %v, want those of merging the files: %v", g, w)
				}
			})
			t.Run("an entry over MaxFileBytes is a limit error naming it", func(t *testing.T) {
				inputs, err := SelectIndex(t.Context(), x, index.Filter{Type: "cpu"})
				if err != nil {
					t.Fatal(err)
				}
				_, err = Merge(t.Context(), inputs, MergeConfig{MaxFileBytes: 64})
				var le *LimitError
				if !errors.As(err, &le) || le.Limit != "MaxFileBytes" || !strings.Contains(err.Error(), inputs[0].Path) {
					t.Errorf("Merge = %v, want a MaxFileBytes limit error naming %s", err, inputs[0].Path)
				}
			})
			t.Run("entries of different types are refused naming both", func(t *testing.T) {
				es, err := x.List(t.Context(), index.Filter{Service: "checkout"})
				if err != nil {
					t.Fatal(err)
				}
				var inputs []Input
				for _, e := range es {
					inputs = append(inputs, EntryInput(x, e))
				}
				_, err = Merge(t.Context(), inputs, MergeConfig{})
				if err == nil || !strings.Contains(err.Error(), "cannot merge") || !strings.Contains(err.Error(), "sample types differ") {
					t.Errorf("Merge = %v, want the sample types named as different", err)
				}
			})
		})
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDefaultBaseIsTheHourOfScheduledProfilesBeforeAThresholdCapture(t *testing.T) {
	cpu, heap := realProfiles(t)
	at := time.Date(2026, 12, 7, 14, 0, 0, 0, time.UTC)
	m := func(service, typ, reason string, minutes int) storage.Meta {
		return storage.Meta{Namespace: "shop", Service: service, Pod: service + "-0", Type: typ, Reason: reason,
			CapturedAt: at.Add(time.Duration(minutes) * time.Minute), Duration: time.Second}
	}
	for _, s := range stores(t) {
		t.Run(s.name, func(t *testing.T) {
			spike := s.putAll(t, cpu, m("checkout", "cpu", "threshold: cpu 93% of request >= 80%", 0))[0]
			in := s.putAll(t, cpu, m("checkout", "cpu", "schedule", -50), m("checkout", "cpu", "schedule", -10))
			s.putAll(t, cpu,
				m("checkout", "cpu", "schedule", -70),   // before the hour
				m("checkout", "cpu", "schedule", 5),     // after the spike
				m("checkout", "cpu", "manual", -20),     // not scheduled
				m("payments", "cpu", "schedule", -5),    // another service
				m("cart", "cpu", "threshold: cpu", -30), // a threshold capture without a base
			)
			s.putAll(t, heap, m("checkout", "heap", "schedule", -5)) // another type
			otherNS := m("checkout", "cpu", "schedule", -15)
			otherNS.Namespace = "staging"
			s.putAll(t, cpu, otherNS)
			x := s.x(t)
			stat := func(id string) index.Entry {
				e, err := x.Stat(t.Context(), id)
				if err != nil {
					t.Fatal(err)
				}
				return e
			}

			b, err := DefaultBase(t.Context(), x, stat(spike))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range b.Inputs {
				got = append(got, in.Entry.ID)
			}
			if !slices.Equal(got, in) {
				t.Errorf("default base %q, want the two scheduled checkout cpu profiles of the hour before: %q", got, in)
			}
			want := "2 scheduled cpu profiles of shop/checkout captured from 2026-12-07T13:10:00Z to 2026-12-07T13:50:00Z, in the hour before the threshold capture at 2026-12-07T14:00:00Z"
			if b.String() != want {
				t.Errorf("base described as %q, want %q", b, want)
			}

			cart, err := x.List(t.Context(), index.Filter{Service: "cart"})
			if err != nil || len(cart) != 1 {
				t.Fatalf("cart: %v, %v", cart, err)
			}
			_, err = DefaultBase(t.Context(), x, cart[0])
			if !errors.Is(err, ErrNoBase) || !strings.Contains(err.Error(), "no scheduled cpu profiles of shop/cart") ||
				!strings.Contains(err.Error(), "from 2026-12-07T12:30:00Z to 2026-12-07T13:30:00Z") {
				t.Errorf("DefaultBase of cart's capture = %v, want an error naming shop/cart and the window", err)
			}
			_, err = DefaultBase(t.Context(), x, stat(in[0]))
			if err == nil || !strings.Contains(err.Error(), "is not a threshold capture (trigger schedule)") {
				t.Errorf("DefaultBase of a scheduled capture = %v, want it refused as no threshold capture", err)
			}
		})
	}
}
