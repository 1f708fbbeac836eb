package profdiff

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/capture"
)

func TestTypeOfRealProfiles(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	s.capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap, capture.TypeAllocs, capture.TypeGoroutine,
		capture.TypeMutex, capture.TypeThreadCreate)
	files := profileFiles(t, dir)
	if len(files) != 6 {
		t.Fatalf("captured %d profiles, want 6: %v", len(files), files)
	}
	for _, f := range files {
		want := typeFromName(filepath.Base(f))
		t.Run("a "+want+" profile is told by its sample types", func(t *testing.T) {
			p, err := ReadProfile(f, DefaultMaxFileBytes)
			if err != nil {
				t.Fatal(err)
			}
			if got := TypeOf(p); got != want {
				t.Fatalf("TypeOf(%s) = %q, want %q", f, got, want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	s := startSampleApp(t)
	dir := t.TempDir()
	s.capture(t, dir, time.Second, capture.TypeCPU, capture.TypeHeap)
	files := profileFiles(t, dir)
	// A profile with neither sidecar nor typed name, as the agent writes them, and
	// leftovers that are not profiles of the store.
	cpuBytes, err := os.ReadFile(files[slices.IndexFunc(files, func(f string) bool { return strings.HasSuffix(f, "_cpu.pb.gz") })])
	if err != nil {
		t.Fatal(err)
	}
	agentFile := filepath.Join(dir, "agent", "pprof-node-20260101-000000.pb.gz")
	if err := os.MkdirAll(filepath.Dir(agentFile), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{agentFile: cpuBytes, filepath.Join(dir, ".tmp-123"): []byte("partial"),
		filepath.Join(dir, "README.md"): []byte("not a profile")} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	names := func(ins []Input) []string {
		var out []string
		for _, in := range ins {
			out = append(out, filepath.Base(in.Path)+":"+in.Type)
		}
		slices.Sort(out)
		return out
	}

	t.Run("--type cpu takes the sidecar-typed cpu profile and the untyped one read as cpu", func(t *testing.T) {
		got, err := Select([]string{dir}, "cpu", 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || !slices.Contains(names(got), "pprof-node-20260101-000000.pb.gz:cpu") {
			t.Fatalf("Select cpu = %v, want the captured cpu profile and the agent's", names(got))
		}
		for _, in := range got {
			if strings.HasSuffix(in.Path, "_cpu.pb.gz") && in.Duration != time.Second {
				t.Errorf("%s: duration %s from the sidecar, want 1s", in.Path, in.Duration)
			}
		}
	})
	t.Run("a directory of two types without --type is refused with both named", func(t *testing.T) {
		_, err := Select([]string{dir}, "", 0)
		if err == nil || !strings.Contains(err.Error(), "holds profiles of 2 types (cpu, heap): choose one with --type") {
			t.Fatalf("Select = %v, want the two types listed", err)
		}
	})
	t.Run("a type the directory lacks is named", func(t *testing.T) {
		_, err := Select([]string{dir}, "goroutine", 0)
		if err == nil || !strings.Contains(err.Error(), dir+": no goroutine profile files") {
			t.Fatalf("Select goroutine = %v, want no goroutine profile files named", err)
		}
	})
	t.Run("a corrupt untyped file in a directory is named", func(t *testing.T) {
		bad := t.TempDir()
		p := filepath.Join(bad, "garbage.pb.gz")
		if err := os.WriteFile(p, []byte{0x1f, 0x8b, 1, 2, 3}, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Select([]string{bad}, "cpu", 0)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Fatalf("Select = %v, want an error naming %s", err, p)
		}
	})
	t.Run("a missing path is named", func(t *testing.T) {
		missing := filepath.Join(dir, "nope")
		_, err := Select([]string{missing}, "", 0)
		if err == nil || !strings.Contains(err.Error(), missing) {
			t.Fatalf("Select = %v, want an error naming %s", err, missing)
		}
	})
}
