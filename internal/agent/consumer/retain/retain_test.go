package retain

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func write(t *testing.T, dir, name string, size int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o600); err != nil {
		t.Fatal(err)
	}
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// The oldest managed files go first (a "-N" file after its base second),
// other files are never touched, and the newest file stays even when it alone
// is over the byte bound.
func TestPruneRemovesTheOldestManagedFiles(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"p-20261123-070000.x", "p-20261123-070000-1.x", "p-20261123-070001.x", "p-20261123-070002.x"} {
		write(t, dir, n, 10)
	}
	write(t, dir, "other-20261123-060000.x", 10)
	write(t, dir, ".tmp-123", 10)
	if err := Prune(Policy{Dir: dir, Prefix: "p-", Suffix: ".x", MaxFiles: 2}); err != nil {
		t.Fatal(err)
	}
	want := []string{".tmp-123", "other-20261123-060000.x", "p-20261123-070001.x", "p-20261123-070002.x"}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after MaxFiles 2: %q, want %q", got, want)
	}
	write(t, dir, "p-20261123-070003.x", 100)
	if err := Prune(Policy{Dir: dir, Prefix: "p-", Suffix: ".x", MaxFiles: 10, MaxBytes: 50}); err != nil {
		t.Fatal(err)
	}
	want = []string{".tmp-123", "other-20261123-060000.x", "p-20261123-070003.x"}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Fatalf("after MaxBytes 50: %q, want %q", got, want)
	}
}

func TestFreeNameAddsACounterWhenTaken(t *testing.T) {
	dir := t.TempDir()
	if got := FreeName(dir, "p-", "s", ".x"); got != filepath.Join(dir, "p-s.x") {
		t.Fatalf("free name %s", got)
	}
	write(t, dir, "p-s.x", 1)
	write(t, dir, "p-s-1.x", 1)
	if got := FreeName(dir, "p-", "s", ".x"); got != filepath.Join(dir, "p-s-2.x") {
		t.Fatalf("taken twice: %s, want p-s-2.x", got)
	}
}

func TestPruneOfAMissingDirIsAnError(t *testing.T) {
	if err := Prune(Policy{Dir: filepath.Join(t.TempDir(), "gone"), Prefix: "p-", MaxFiles: 1}); err == nil {
		t.Fatal("no error for a missing directory")
	}
}
