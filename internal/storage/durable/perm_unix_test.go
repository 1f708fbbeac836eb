//go:build unix

package durable

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// setUmask fixes the process umask for the test, so modes are predictable.
func setUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

func TestWriteTempCreatesTheFileWithPerm(t *testing.T) {
	setUmask(t, 0o022)
	for _, tt := range []struct {
		name       string
		perm, want os.FileMode
	}{
		{name: "a private file is owner-only", perm: 0o600, want: 0o600},
		{name: "a shared file is world-readable", perm: 0o644, want: 0o644},
		{name: "the umask applies", perm: 0o666, want: 0o644},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			name, err := WriteTemp(openRoot(t, dir), ".", []byte("x"), tt.perm)
			if err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != tt.want {
				t.Errorf("mode = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMkdirAllCreatesEveryDirectoryWithPerm(t *testing.T) {
	setUmask(t, 0o022)
	for _, perm := range []os.FileMode{0o700, 0o755} {
		base := t.TempDir()
		if err := MkdirAll(openRoot(t, base), "a/b", perm); err != nil {
			t.Fatal(err)
		}
		if err := MkdirAllPath(filepath.Join(base, "c", "d"), perm); err != nil {
			t.Fatal(err)
		}
		for _, d := range []string{"a", "a/b", "c", "c/d"} {
			info, err := os.Stat(filepath.Join(base, filepath.FromSlash(d)))
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != perm {
				t.Errorf("%s mode = %v, want %v", d, got, perm)
			}
		}
	}
}
