package fs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(Config{Dir: filepath.Join(t.TempDir(), "profiles")})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

// listFiles returns every regular file below dir, slash-separated and sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(out)
	return out
}

func readMeta(t *testing.T, s *Store, key string) storage.Meta {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Dir(), filepath.FromSlash(key)+MetaSuffix))
	if err != nil {
		t.Fatalf("read metadata of %s: %v", key, err)
	}
	var m storage.Meta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("decode metadata of %s: %v", key, err)
	}
	return m
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		dir     string
		wantErr string
	}{
		{name: "an empty Dir is rejected naming the field", dir: "", wantErr: "Dir is required"},
		{name: "a blank Dir is rejected naming the field", dir: "  ", wantErr: "Dir is required"},
		{name: "a relative Dir is made absolute", dir: "profiles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Dir: tt.dir}
			c.SetDefaults()
			err := c.Validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Validate() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if !filepath.IsAbs(c.Dir) {
				t.Errorf("Dir = %q, want absolute", c.Dir)
			}
		})
	}
}

func TestNewCreatesDirAndRemovesStaleTemporaryFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	if err := os.MkdirAll(filepath.Join(dir, "ns", "svc"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		".tmp-abc":               "half a profile",
		"ns/svc/.tmp-0123":       "half a profile",
		"ns/svc/p.pb.gz":         "profile",
		"ns/svc/p.pb.gz.json":    "{}",
		"ns/svc/not.tmp-a-temp":  "kept",
		"ns/svc/.tmpfile-nottmp": "kept",
	} {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s, err := New(Config{Dir: dir})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := s.String(), "fs:"+dir; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	got := listFiles(t, dir)
	want := []string{"ns/svc/.tmpfile-nottmp", "ns/svc/not.tmp-a-temp", "ns/svc/p.pb.gz", "ns/svc/p.pb.gz.json"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("files after New = %v, want %v", got, want)
	}
}

func TestPutStoresProfileAndMetadata(t *testing.T) {
	s := newStore(t)
	data := []byte{0x1f, 0x8b, 1, 2, 3}
	meta := storage.Meta{
		Namespace:  "shop",
		Pod:        "cart-7d9f",
		Node:       "node-1",
		Service:    "cart",
		Container:  "app",
		Target:     "shop/cart-7d9f",
		Config:     "shop/default",
		Reason:     "schedule",
		Type:       "cpu",
		CapturedAt: time.Date(2025, 3, 4, 5, 6, 7, 890_000_000, time.UTC),
		Duration:   10 * time.Second,
		Labels:     map[string]string{"team": "payments"},
	}
	key := "shop/cart/2025-03-04/20250304T050607.890Z_cart-7d9f_cpu.pb.gz"

	if err := s.Put(context.Background(), key, data, meta); err != nil {
		t.Fatalf("Put: %v", err)
	}

	got, err := os.ReadFile(filepath.Join(s.Dir(), filepath.FromSlash(key)))
	if err != nil {
		t.Fatalf("read profile: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("stored bytes = %x, want %x", got, data)
	}
	gotMeta := readMeta(t, s, key)
	if !gotMeta.CapturedAt.Equal(meta.CapturedAt) {
		t.Errorf("CapturedAt = %v, want %v", gotMeta.CapturedAt, meta.CapturedAt)
	}
	gotMeta.CapturedAt = meta.CapturedAt
	if fmt.Sprintf("%+v", gotMeta) != fmt.Sprintf("%+v", meta) {
		t.Errorf("metadata round trip = %+v, want %+v", gotMeta, meta)
	}
	if files := listFiles(t, s.Dir()); len(files) != 2 {
		t.Errorf("files = %v, want exactly the profile and its metadata", files)
	}
}

func TestPutOverwritesAnExistingKeyAsAPair(t *testing.T) {
	s := newStore(t)
	key := "a/b.pprof"
	for i, pod := range []string{"first", "second"} {
		if err := s.Put(context.Background(), key, []byte(pod), storage.Meta{Pod: pod, Type: "heap"}); err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
	}
	got, err := os.ReadFile(filepath.Join(s.Dir(), "a", "b.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "second" || readMeta(t, s, key).Pod != "second" {
		t.Errorf("after overwrite profile = %q, metadata pod = %q; want both from the second Put", got, readMeta(t, s, key).Pod)
	}
}

func TestPutRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		wantErr string
	}{
		{name: "an empty key is rejected", key: "", wantErr: "empty"},
		{name: "an absolute key is rejected", key: "/etc/passwd", wantErr: "relative"},
		{name: "a leading parent segment is rejected", key: "../escape.pprof", wantErr: `".."`},
		{name: "a parent segment in the middle is rejected", key: "a/../../escape.pprof", wantErr: `".."`},
		{name: "a dot segment is rejected", key: "a/./b.pprof", wantErr: `"."`},
		{name: "a double slash is rejected", key: "a//b.pprof", wantErr: "empty path segment"},
		{name: "a trailing slash is rejected", key: "a/b/", wantErr: "empty path segment"},
		{name: "a backslash is rejected", key: `a\..\b.pprof`, wantErr: "backslash"},
		{name: "a NUL byte is rejected", key: "a\x00b", wantErr: "NUL"},
		{name: "a temporary-file name is rejected", key: "a/.tmp-123", wantErr: "reserved for temporary files"},
		{name: "a metadata name is rejected", key: "a/b.json", wantErr: "reserved for metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			s, err := New(Config{Dir: filepath.Join(parent, "store")})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Put(context.Background(), tt.key, []byte("x"), storage.Meta{Type: "cpu"})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Put(%q) = %v, want error containing %q", tt.key, err, tt.wantErr)
			}
			if files := listFiles(t, parent); len(files) != 0 {
				t.Errorf("files after rejected Put = %v, want none", files)
			}
		})
	}
}

func TestPutDoesNotFollowSymlinksOutOfTheStore(t *testing.T) {
	outside := t.TempDir()
	s := newStore(t)
	if err := os.Symlink(outside, filepath.Join(s.Dir(), "link")); err != nil {
		t.Fatalf("cannot create symlink: %v", err)
	}
	err := s.Put(context.Background(), "link/x.pprof", []byte("x"), storage.Meta{Type: "cpu"})
	if err == nil {
		t.Fatal("Put through a symlink that leaves the store succeeded, want error")
	}
	if files := listFiles(t, outside); len(files) != 0 {
		t.Errorf("files written outside the store = %v, want none", files)
	}
}

func TestPutWithCancelledContextLeavesNothing(t *testing.T) {
	tests := []struct {
		name string
		// cancelAt is "before" (ctx cancelled before Put) or "between" (cancelled after
		// the metadata is in place, before the profile is renamed).
		cancelAt string
	}{
		{name: "a context cancelled before Put writes nothing", cancelAt: "before"},
		{name: "a context cancelled between the metadata and the profile rename removes the metadata", cancelAt: "between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx, cancel := context.WithCancel(context.Background())
			t.Cleanup(cancel)
			hookRan := false
			switch tt.cancelAt {
			case "before":
				cancel()
			case "between":
				s.beforeProfileRename = func() {
					hookRan = true
					if _, err := os.Stat(filepath.Join(s.Dir(), "ns", "p.pprof.json")); err != nil {
						t.Errorf("metadata not in place before the profile rename: %v", err)
					}
					cancel()
				}
			}
			err := s.Put(ctx, "ns/p.pprof", []byte("profile"), storage.Meta{Type: "heap"})
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("Put = %v, want context.Canceled", err)
			}
			if tt.cancelAt == "between" && !hookRan {
				t.Fatal("the rename hook did not run")
			}
			if files := listFiles(t, s.Dir()); len(files) != 0 {
				t.Errorf("files after cancelled Put = %v, want none", files)
			}
		})
	}
}

func TestConcurrentPuts(t *testing.T) {
	s := newStore(t)
	const distinct, sameKey = 24, 16
	var wg sync.WaitGroup
	errs := make(chan error, distinct+sameKey)
	for i := range distinct {
		wg.Go(func() {
			key := fmt.Sprintf("ns%d/pod-%d/heap.pprof", i%3, i)
			errs <- s.Put(context.Background(), key, []byte(fmt.Sprintf("profile %d", i)), storage.Meta{Pod: fmt.Sprintf("pod-%d", i), Type: "heap"})
		})
	}
	for i := range sameKey {
		wg.Go(func() {
			errs <- s.Put(context.Background(), "shared/cpu.pprof", []byte(fmt.Sprintf("writer %d", i)), storage.Meta{Pod: fmt.Sprintf("writer %d", i), Type: "cpu"})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Put: %v", err)
		}
	}

	for i := range distinct {
		key := fmt.Sprintf("ns%d/pod-%d/heap.pprof", i%3, i)
		got, err := os.ReadFile(filepath.Join(s.Dir(), filepath.FromSlash(key)))
		if err != nil || string(got) != fmt.Sprintf("profile %d", i) {
			t.Errorf("%s = %q, %v; want %q", key, got, err, fmt.Sprintf("profile %d", i))
		}
		if m := readMeta(t, s, key); m.Pod != fmt.Sprintf("pod-%d", i) {
			t.Errorf("%s metadata pod = %q, want pod-%d", key, m.Pod, i)
		}
	}
	shared, err := os.ReadFile(filepath.Join(s.Dir(), "shared", "cpu.pprof"))
	if err != nil {
		t.Fatal(err)
	}
	if m := readMeta(t, s, "shared/cpu.pprof"); m.Pod != string(shared) {
		t.Errorf("same-key writers left profile %q with metadata of %q, want a matching pair", shared, m.Pod)
	}
	for _, f := range listFiles(t, s.Dir()) {
		if strings.Contains(f, tempPrefix) {
			t.Errorf("temporary file left behind: %s", f)
		}
	}
	if got, want := len(listFiles(t, s.Dir())), 2*distinct+2; got != want {
		t.Errorf("file count = %d, want %d", got, want)
	}
}

func TestPutBelowAnExistingProfileFailsCleanly(t *testing.T) {
	s := newStore(t)
	if err := s.Put(context.Background(), "a/p.pprof", []byte("x"), storage.Meta{Type: "heap"}); err != nil {
		t.Fatal(err)
	}
	err := s.Put(context.Background(), "a/p.pprof/q.pprof", []byte("y"), storage.Meta{Type: "heap"})
	if err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Fatalf("Put below a profile = %v, want a not-a-directory error", err)
	}
	if got, want := fmt.Sprint(listFiles(t, s.Dir())), "[a/p.pprof a/p.pprof.json]"; got != want {
		t.Errorf("files = %s, want %s", got, want)
	}
}
