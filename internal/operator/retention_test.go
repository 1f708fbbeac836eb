package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/storage"
)

// seedProfile writes a profile of size bytes and its sidecar below dir, as the fs
// store does, and returns the size of both.
func seedProfile(t *testing.T, dir, name, config string, at time.Time, size int) int64 {
	t.Helper()
	meta, err := json.Marshal(storage.Meta{Namespace: "retention", Type: "heap", Config: config, CapturedAt: at})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), bytes.Repeat([]byte{'p'}, size), 0o644); err != nil {
		t.Fatal(err)
	}
	return int64(len(meta) + size)
}

func TestOperatorPrunesLocalProfilesOldestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns, name = "retention", "keep-small"
	const maxBytes = 1 << 20
	createNamespace(t, ns)

	t.Run("a maxBytes below 1 MiB is refused by the API server", func(t *testing.T) {
		pc := &profilingv1alpha1.ProfilingConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "too-small"},
			Spec: profilingv1alpha1.ProfilingConfigSpec{
				LocalStorage: &profilingv1alpha1.LocalStorage{Path: ns, MaxBytes: 1000, MaxAgeSeconds: 30},
			},
		}
		err := k8sClient.Create(ctx, pc)
		if err == nil || !strings.Contains(err.Error(), "maxBytes") || !strings.Contains(err.Error(), "maxAgeSeconds") {
			t.Fatalf("create with maxBytes 1000 and maxAgeSeconds 30: %v, want both fields refused", err)
		}
	})

	// Before the config exists: an ancient profile of nobody (past the operator's
	// --profiles-max-age of 24h in this suite), and two of the config that together
	// exceed its maxBytes, the younger one leaving less than 2 KiB for captures; both
	// within its maxAgeSeconds.
	prunedAge := sumFrom(t, registry, "kprof_local_profiles_pruned_total", "reason", "max-age")
	dir := filepath.Join(profilesDir, ns)
	now := time.Now()
	seedProfile(t, dir, "ancient.pb.gz", "", now.Add(-48*time.Hour), 10)
	seedProfile(t, dir, "older.pb.gz", ns+"/"+name, now.Add(-50*time.Minute), 200<<10)
	seedProfile(t, dir, "younger.pb.gz", ns+"/"+name, now.Add(-40*time.Minute), maxBytes-2<<10)

	port := startSampleApp(t, "127.0.0.81")
	createPod(t, ns, podSpec{name: "api-0", labels: map[string]string{"app": "api"}, annotated: true, ip: "127.0.0.81", port: port, ready: true})
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:     profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "api"}}},
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap", "goroutine"},
			LocalStorage: &profilingv1alpha1.LocalStorage{Path: ns, MaxBytes: maxBytes, MaxAgeSeconds: 3600},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}

	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	eventually(t, 90*time.Second, "captured profiles stored and every seeded one pruned", func() error {
		captured := len(profileFiles(t, dir)) - btoi(exists("ancient.pb.gz")) - btoi(exists("older.pb.gz")) - btoi(exists("younger.pb.gz"))
		for _, f := range []string{"ancient.pb.gz", "ancient.pb.gz.json", "older.pb.gz", "older.pb.gz.json", "younger.pb.gz", "younger.pb.gz.json"} {
			if exists(f) {
				return fmt.Errorf("%s still there, %d captured profiles", f, captured)
			}
		}
		if captured < 2 {
			return fmt.Errorf("%d captured profiles", captured)
		}
		return nil
	})
	for _, f := range profileFiles(t, dir) {
		if _, err := os.Stat(f + ".json"); err != nil {
			t.Errorf("captured profile %s lost its metadata: %v", f, err)
		}
	}
	if got := sumFrom(t, registry, "kprof_local_profiles_pruned_total", "reason", "max-age") - prunedAge; got < 1 {
		t.Errorf("kprof_local_profiles_pruned_total{reason=max-age} grew by %v, want the ancient profile counted", got)
	}
	// Only this test's config has limits, so every config-max-bytes prune is one of its own.
	if got := sumFrom(t, registry, "kprof_local_profiles_pruned_total", "reason", "config-max-bytes"); got != 2 {
		t.Errorf("kprof_local_profiles_pruned_total{reason=config-max-bytes} = %v, want 2 (older, then younger once captures exceeded 1 MiB)", got)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
