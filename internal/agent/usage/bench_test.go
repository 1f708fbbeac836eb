package usage

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// benchTree writes a v2 systemd tree of pods pods with two containers each
// (a node at the kubelet's default limit of 110 pods has about this many) and
// returns the root and every value file in it.
func benchTree(b *testing.B, pods int) (root string, files []string) {
	root = b.TempDir()
	all := map[string]string{"cgroup.controllers": "cpu memory\n"}
	for p := range pods {
		uid := fmt.Sprintf("%08x-0000-4000-8000-%012x", p, p)
		pod := "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
		for k, v := range v2Files(pod, uint64(p)*1000, 1<<20) {
			all[k] = v
		}
		for c := range 2 {
			cid := fmt.Sprintf("%062x%02x", p, c)
			for k, v := range v2Files(pod+"/cri-containerd-"+cid+".scope", uint64(p)*500, 1<<19) {
				all[k] = v
			}
		}
	}
	for rel, content := range all {
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		if strings.HasSuffix(rel, "cpu.stat") || strings.HasSuffix(rel, "memory.current") {
			files = append(files, path)
		}
	}
	return root, files
}

// BenchmarkReadOnce110Pods is one reading of a node with 110 pods (330
// cgroups) beside its baseline, a bare os.ReadFile of the same value files
// with no walk and no parsing; it reports the ratio.
func BenchmarkReadOnce110Pods(b *testing.B) {
	root, files := benchTree(b, 110)
	r, err := New(Config{Root: root, Publish: func(*profile.Metrics) {}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	if m, err := r.ReadOnce(now); err != nil || len(m.Points) != 110*3*2 {
		b.Fatalf("reading: %v, %d points, want %d", err, len(m.Points), 110*3*2)
	}
	var kprof, bare time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		t0 := time.Now()
		if _, err := r.ReadOnce(now.Add(time.Duration(i) * time.Second)); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for _, f := range files {
			if _, err := os.ReadFile(f); err != nil {
				b.Fatal(err)
			}
		}
		kprof += t1.Sub(t0)
		bare += time.Since(t1)
	}
	b.ReportMetric(float64(kprof.Microseconds())/float64(b.N), "kprof-µs/reading")
	b.ReportMetric(float64(bare.Microseconds())/float64(b.N), "bare-µs/reading")
	b.ReportMetric(float64(kprof)/float64(bare), "ratio")
}
