package durable

import (
	"errors"
	"fmt"
	iofs "io/fs"
	"os"
	"path/filepath"
)

// SyncDir fsyncs directory dir (relative to root; "." is root itself), so the
// entries added to or removed from it survive a crash.
func SyncDir(root *os.Root, dir string) error { return syncDir(root, dir) }

// MkdirAll creates dir (relative to root) and its missing parents with
// permissions perm, fsyncing the parent of each directory it creates so the new
// entries survive a crash. An existing directory is left as it is; an existing
// file in its place is an error.
func MkdirAll(root *os.Root, dir string, perm os.FileMode) error {
	return mkdirAll(root, filepath.Clean(dir), perm)
}

// MkdirAllPath is MkdirAll for a path outside any os.Root, such as the
// directory a store opens its root on.
func MkdirAllPath(dir string, perm os.FileMode) error {
	return mkdirAll(osDirs{}, filepath.Clean(dir), perm)
}

// RemoveTemps removes every regular file below root whose name starts with
// TempPrefix: the leftovers of writes that a crash interrupted. Symbolic links
// are neither removed nor followed. Only one writer may use root meanwhile: its
// temporary files would be removed too.
func RemoveTemps(root *os.Root) error {
	return iofs.WalkDir(root.FS(), ".", func(p string, d iofs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && IsTemp(d.Name()) {
			if err := root.Remove(p); err != nil && !errors.Is(err, iofs.ErrNotExist) {
				return err
			}
		}
		return nil
	})
}

// dirs is what mkdirAll needs: *os.Root, or osDirs for plain paths.
type dirs interface {
	Stat(name string) (iofs.FileInfo, error)
	Mkdir(name string, perm os.FileMode) error
	Open(name string) (*os.File, error)
}

type osDirs struct{}

func (osDirs) Stat(name string) (iofs.FileInfo, error)   { return os.Stat(name) }
func (osDirs) Mkdir(name string, perm os.FileMode) error { return os.Mkdir(name, perm) }
func (osDirs) Open(name string) (*os.File, error)        { return os.Open(name) }

func mkdirAll(d dirs, dir string, perm os.FileMode) error {
	if info, err := d.Stat(dir); err == nil {
		if !info.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != dir {
		if err := mkdirAll(d, parent, perm); err != nil {
			return err
		}
	}
	if err := d.Mkdir(dir, perm); err != nil && !errors.Is(err, iofs.ErrExist) {
		return err
	}
	return syncDir(d, parent)
}

func syncDir(d dirs, dir string) error {
	f, err := d.Open(dir)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
