package durable

import (
	"errors"
	iofs "io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

func openRoot(t *testing.T, dir string) *os.Root {
	t.Helper()
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = root.Close() })
	return root
}

// listFiles returns the slash-separated names of all entries below dir that are
// not directories, sorted.
func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d iofs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	return names
}

func mustWrite(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(name, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// setSeam replaces *seam with v for the rest of the test.
func setSeam[T any](t *testing.T, seam *T, v T) {
	old := *seam
	*seam = v
	t.Cleanup(func() { *seam = old })
}

func TestIsTemp(t *testing.T) {
	for _, tt := range []struct {
		name string
		want bool
	}{
		{".tmp-0123456789abcdef", true},
		{"ns/svc/.tmp-x", true},
		{".tmp-", true},
		{"not.tmp-a-temp", false},
		{".tmpfile", false},
		{".tmp-dir/profile", false},
	} {
		if got := IsTemp(tt.name); got != tt.want {
			t.Errorf("IsTemp(%q) = %t, want %t", tt.name, got, tt.want)
		}
	}
}

func TestWriteTempWritesANewTemporaryFileInDir(t *testing.T) {
	for _, tt := range []struct {
		name, dir string
		wantName  *regexp.Regexp
	}{
		{name: "in the root", dir: ".", wantName: regexp.MustCompile(`^\.tmp-[0-9a-f]{16}$`)},
		{name: "in a subdirectory", dir: "ns/svc", wantName: regexp.MustCompile(`^ns/svc/\.tmp-[0-9a-f]{16}$`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, filepath.FromSlash(tt.dir)), 0o755); err != nil {
				t.Fatal(err)
			}
			root := openRoot(t, dir)
			var names []string
			for _, data := range []string{"first", "second"} {
				name, err := WriteTemp(root, tt.dir, []byte(data), 0o600)
				if err != nil {
					t.Fatalf("WriteTemp: %v", err)
				}
				if !tt.wantName.MatchString(name) || !IsTemp(name) {
					t.Errorf("name = %q, want a match of %s", name, tt.wantName)
				}
				if got, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name))); err != nil || string(got) != data {
					t.Errorf("%s holds %q, %v; want %q", name, got, err, data)
				}
				names = append(names, name)
			}
			if names[0] == names[1] {
				t.Errorf("two writes used the same name %q", names[0])
			}
		})
	}
}

func TestWriteTempNeverOverwritesAnExistingFile(t *testing.T) {
	setSeam(t, &randomName, func() string { return TempPrefix + "0123456789abcdef" })
	dir := t.TempDir()
	root := openRoot(t, dir)
	first, err := WriteTemp(root, ".", []byte("first"), 0o600)
	if err != nil {
		t.Fatalf("first WriteTemp: %v", err)
	}
	second, err := WriteTemp(root, ".", []byte("second"), 0o600)
	if !errors.Is(err, iofs.ErrExist) || second != "" {
		t.Fatalf("second WriteTemp with the same name = %q, %v; want an ErrExist error", second, err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, first)); err != nil || string(got) != "first" {
		t.Errorf("the existing file holds %q, %v; want it untouched (%q)", got, err, "first")
	}
}

func TestWriteTempRemovesTheFileWhenWritingFails(t *testing.T) {
	// The file is created for real, then handed over read-only, so Write fails.
	setSeam(t, &openFile, func(r *os.Root, name string, flag int, perm os.FileMode) (*os.File, error) {
		f, err := r.OpenFile(name, flag, perm)
		if err != nil {
			return nil, err
		}
		_ = f.Close()
		return r.Open(name)
	})
	dir := t.TempDir()
	name, err := WriteTemp(openRoot(t, dir), ".", []byte("data"), 0o600)
	if err == nil || !strings.HasPrefix(err.Error(), "write ") || name != "" {
		t.Fatalf("WriteTemp = %q, %v; want a write error", name, err)
	}
	if files := listFiles(t, dir); len(files) != 0 {
		t.Errorf("left behind %v, want nothing", files)
	}
}

func TestWriteTempFailsWithoutCreatingAnything(t *testing.T) {
	for _, tt := range []struct {
		name, dir string
		wantErr   string
	}{
		{name: "a missing directory is an error", dir: "missing", wantErr: "no such file or directory"},
		{name: "a directory outside the root is an error", dir: "..", wantErr: "path escapes from parent"},
		{name: "a file in place of the directory is an error", dir: "file", wantErr: "not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root")
			mustWrite(t, filepath.Join(dir, "file"), "x")
			name, err := WriteTemp(openRoot(t, dir), tt.dir, []byte("data"), 0o600)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || name != "" {
				t.Fatalf("WriteTemp = %q, %v; want an error containing %q", name, err, tt.wantErr)
			}
			if files := listFiles(t, filepath.Dir(dir)); !slices.Equal(files, []string{"root/file"}) {
				t.Errorf("files = %v, want only root/file", files)
			}
		})
	}
}

func TestSyncDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	root := openRoot(t, dir)
	for _, tt := range []struct {
		name, dir string
		wantErr   error
	}{
		{name: "the root itself is synced", dir: "."},
		{name: "a subdirectory is synced", dir: "sub"},
		{name: "a missing directory is an error", dir: "missing", wantErr: iofs.ErrNotExist},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := SyncDir(root, tt.dir); !errors.Is(err, tt.wantErr) {
				t.Errorf("SyncDir(%q) = %v, want %v", tt.dir, err, tt.wantErr)
			}
		})
	}
}

func TestMkdirAll(t *testing.T) {
	for _, tt := range []struct {
		name, dir string
		wantErr   string
	}{
		{name: "missing parents are created", dir: "a/b/c"},
		{name: "an existing directory is fine", dir: "existing"},
		{name: "the root itself is fine", dir: "."},
		{name: "a file in place of the directory is an error", dir: "file", wantErr: "file is not a directory"},
		{name: "a file in place of a parent is an error", dir: "file/sub", wantErr: "not a directory"},
		{name: "a directory outside the root is an error", dir: "../outside", wantErr: "path escapes from parent"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "root")
			mustWrite(t, filepath.Join(dir, "file"), "x")
			if err := os.Mkdir(filepath.Join(dir, "existing"), 0o755); err != nil {
				t.Fatal(err)
			}
			err := MkdirAll(openRoot(t, dir), tt.dir, 0o755)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("MkdirAll(%q) = %v, want an error containing %q", tt.dir, err, tt.wantErr)
				}
				if _, err := os.Stat(filepath.Join(filepath.Dir(dir), "outside")); err == nil {
					t.Error("a directory was created outside the root")
				}
				return
			}
			if err != nil {
				t.Fatalf("MkdirAll(%q): %v", tt.dir, err)
			}
			if info, err := os.Stat(filepath.Join(dir, filepath.FromSlash(tt.dir))); err != nil || !info.IsDir() {
				t.Errorf("%s is not a directory after MkdirAll: %v", tt.dir, err)
			}
		})
	}
}

func TestMkdirAllPath(t *testing.T) {
	base := t.TempDir()
	mustWrite(t, filepath.Join(base, "file"), "x")
	for _, tt := range []struct {
		name, dir string
		wantErr   string
	}{
		{name: "missing parents of an absolute path are created", dir: filepath.Join(base, "a", "b")},
		{name: "an existing directory is fine", dir: base},
		{name: "a file in place of the directory is an error", dir: filepath.Join(base, "file"), wantErr: "is not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := MkdirAllPath(tt.dir, 0o755)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("MkdirAllPath(%q) = %v, want an error containing %q", tt.dir, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("MkdirAllPath(%q): %v", tt.dir, err)
			}
			if info, err := os.Stat(tt.dir); err != nil || !info.IsDir() {
				t.Errorf("%s is not a directory after MkdirAllPath: %v", tt.dir, err)
			}
		})
	}
}

func TestRemoveTempsRemovesOnlyTemporaryFiles(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	outside := filepath.Join(base, "outside")
	for _, name := range []string{
		"root/.tmp-abc",
		"root/ns/svc/.tmp-0123",
		"root/.tmp-dir/.tmp-inner",
		"root/ns/svc/p.pb.gz",
		"root/ns/svc/not.tmp-a-temp",
		"root/ns/svc/.tmpfile-nottmp",
		"root/.tmp-dir/kept",
		"outside/.tmp-target",
	} {
		mustWrite(t, filepath.Join(base, filepath.FromSlash(name)), "x")
	}
	if err := os.Symlink(filepath.Join(outside, ".tmp-target"), filepath.Join(dir, ".tmp-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "linkdir")); err != nil {
		t.Fatal(err)
	}

	if err := RemoveTemps(openRoot(t, dir)); err != nil {
		t.Fatalf("RemoveTemps: %v", err)
	}
	want := []string{
		"outside/.tmp-target",
		"root/.tmp-dir/kept",
		"root/.tmp-link",
		"root/linkdir",
		"root/ns/svc/.tmpfile-nottmp",
		"root/ns/svc/not.tmp-a-temp",
		"root/ns/svc/p.pb.gz",
	}
	if got := listFiles(t, base); !slices.Equal(got, want) {
		t.Errorf("files after RemoveTemps = %v, want %v", got, want)
	}
}
