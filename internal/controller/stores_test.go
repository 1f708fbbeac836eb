package controller

import (
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
)

func TestDirBelowRefusesToLeaveTheProfilesDirectory(t *testing.T) {
	root := t.TempDir()
	for _, sub := range []string{"/etc", "../x", "a/../../b"} {
		if _, err := dirBelow(root, sub); err == nil {
			t.Errorf("dirBelow(%q) accepted", sub)
		}
	}
	if d, err := dirBelow(root, "team/a"); err != nil || !strings.HasPrefix(d, root) {
		t.Errorf("dirBelow(team/a) = %q, %v", d, err)
	}
}

func TestRemoteIDSeparatesDestinationsButNotPrefixes(t *testing.T) {
	base := profilingv1alpha1.S3Config{Bucket: "profiles", Endpoint: "http://minio:9000", Prefix: "a"}
	samePlace := base
	samePlace.Prefix = "b"
	otherBucket := base
	otherBucket.Bucket = "other"
	otherSecret := base
	otherSecret.CredentialsSecretRef = &profilingv1alpha1.SecretReference{Name: "team-b"}
	if remoteID(&base) != remoteID(&samePlace) {
		t.Error("a different prefix got its own spool")
	}
	if remoteID(&base) == remoteID(&otherBucket) || remoteID(&base) == remoteID(&otherSecret) {
		t.Error("different destinations share a spool")
	}
}

func TestLocalStoreGivesItsConfigsRetentionToThePruner(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	pruner, err := fs.NewPruner(fs.PrunerConfig{Dir: root, Now: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewStores(StoresConfig{ProfilesDir: root, SpoolDir: t.TempDir(), Secrets: fakeReader{}, Pruner: pruner})
	if err != nil {
		t.Fatal(err)
	}
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "pc"},
		Spec:       profilingv1alpha1.ProfilingConfigSpec{LocalStorage: &profilingv1alpha1.LocalStorage{Path: "team", MaxAgeSeconds: 60}},
	}
	st, err := s.Resolve(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	for i, age := range []time.Duration{2 * time.Minute, 30 * time.Second} {
		meta := storage.Meta{Type: "heap", Config: "ns/pc", CapturedAt: now.Add(-age)}
		if err := st.Put(ctx, fmt.Sprintf("p%d.pb.gz", i), []byte("profile"), meta); err != nil {
			t.Fatal(err)
		}
	}
	if res := pruner.Sweep(); res.Pruned[fs.ReasonConfigMaxAge] != 1 || res.Profiles != 1 {
		t.Fatalf("sweep with localStorage.maxAgeSeconds 60: pruned %v, %d left; want the 2-minute-old profile pruned, 1 left", res.Pruned, res.Profiles)
	}

	t.Run("a forgotten config's profiles keep only the operator's bounds", func(t *testing.T) {
		s.Forget("ns/pc")
		now = now.Add(time.Hour)
		if res := pruner.Sweep(); len(res.Pruned) != 0 || res.Profiles != 1 {
			t.Fatalf("sweep after Forget: pruned %v, %d left; want nothing pruned", res.Pruned, res.Profiles)
		}
	})
}

// fakeReader is a Secrets reader for stores that never read one.
type fakeReader struct{ client.Reader }

// TestOpeningAStoreKeepsTheWritesInProgressOfTheStoresBelowIt: NewStores removes the
// temporary files an earlier run left below ProfilesDir, but the root store, opened
// when a config without localStorage.path first captures, leaves alone the temporary
// file of a write in progress of a config with localStorage.path (which used to be
// deleted, failing that write).
func TestOpeningAStoreKeepsTheWritesInProgressOfTheStoresBelowIt(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	stale := filepath.Join(root, "team", "svc", ".tmp-stale")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("left by a crash"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := NewStores(StoresConfig{ProfilesDir: root, SpoolDir: t.TempDir(), Secrets: fakeReader{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, iofs.ErrNotExist) {
		t.Fatalf("stale temporary file after NewStores: %v, want it removed", err)
	}
	config := func(name, path string) *profilingv1alpha1.ProfilingConfig {
		pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}}
		if path != "" {
			pc.Spec.LocalStorage = &profilingv1alpha1.LocalStorage{Path: path}
		}
		return pc
	}
	if _, err := s.Resolve(ctx, config("team", "team")); err != nil {
		t.Fatal(err)
	}
	// A write of the team store in progress: its temporary file is in place.
	inProgress := filepath.Join(root, "team", "svc", ".tmp-123")
	if err := os.WriteFile(inProgress, []byte("half a profile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, config("all", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(inProgress); err != nil {
		t.Fatalf("opening the root store removed the team store's write in progress: %v", err)
	}
}
