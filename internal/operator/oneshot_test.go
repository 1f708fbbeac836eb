package operator_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/testenv"
)

func TestCapturePodResolvesThePodThroughTheAPIServer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "oneshot"
	createNamespace(t, ns)
	port := startSampleApp(t, "127.0.0.41")
	// Not annotated profiling.io/enabled: an explicit one-shot capture does not need it.
	createPod(t, ns, podSpec{name: "api-0", ip: "127.0.0.41", port: port, ready: true})

	target, err := local.ResolvePod(ctx, k8sClient, types.NamespacedName{Namespace: ns, Name: "api-0"})
	if err != nil {
		t.Fatalf("resolve pod: %v", err)
	}
	dir := t.TempDir()
	if err := local.CaptureOne(ctx, local.CaptureOneConfig{Target: target, Types: []capture.ProfileType{capture.TypeHeap}, Dir: dir}); err != nil {
		t.Fatalf("capture: %v", err)
	}
	files := profileFiles(t, dir)
	if len(files) != 1 {
		t.Fatalf("stored %v, want one heap profile", files)
	}

	t.Run("a pod that is not running is refused with its phase", func(t *testing.T) {
		createPod(t, ns, podSpec{name: "api-pending", phase: "Pending"})
		_, err := local.ResolvePod(ctx, k8sClient, types.NamespacedName{Namespace: ns, Name: "api-pending"})
		if err == nil || !strings.Contains(err.Error(), "Pending, not Running") {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestShippedSampleConfigIsAccepted(t *testing.T) {
	t.Parallel()
	paths, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", "*.yaml"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no samples found: %v", err)
	}
	created := map[string]bool{}
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var obj unstructured.Unstructured
		if err := yaml.Unmarshal(raw, &obj.Object); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if ns := obj.GetNamespace(); ns != "" && !created[ns] {
			createNamespace(t, ns)
			created[ns] = true
		}
		if err := k8sClient.Create(context.Background(), &obj); err != nil {
			t.Errorf("%s rejected: %v", filepath.Base(p), err)
		}
	}
}
