// Package durable writes files below an os.Root so that they survive a crash:
// data goes to a temporary file that is fsynced before the caller renames it into
// place, and directories are fsynced after entries are added to or removed from
// them. The stores built on it (fs, spool) own the rename order; this package owns
// the steps they share.
//
// Temporary files are named TempPrefix followed by 16 random hex digits, so a
// store's startup can tell the leftovers of an interrupted write (IsTemp) from
// everything else and remove them (RemoveTemps).
package durable

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path"
	"strings"
)

// TempPrefix starts the name of every temporary file WriteTemp creates.
const TempPrefix = ".tmp-"

// IsTemp reports whether the base name of name marks a temporary file.
func IsTemp(name string) bool { return strings.HasPrefix(path.Base(name), TempPrefix) }

// WriteTemp writes data to a new temporary file in dir (relative to root), with
// permissions perm (before the umask), fsyncs and closes it, and returns its
// root-relative name. The file is created exclusively, so an existing file is
// never overwritten. On error nothing is left behind.
func WriteTemp(root *os.Root, dir string, data []byte, perm os.FileMode) (_ string, err error) {
	// name is not the named result: a failing return sets that to "" before the
	// deferred removal runs.
	name := path.Join(dir, randomName())
	f, err := openFile(root, name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = root.Remove(name)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return "", fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return "", fmt.Errorf("fsync %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return "", fmt.Errorf("close %s: %w", name, err)
	}
	return name, nil
}

// Test seams: a fixed name shows O_EXCL, a read-only file shows a failed write.
var (
	randomName = func() string {
		var rnd [8]byte
		_, _ = rand.Read(rnd[:]) // never fails (crypto/rand since Go 1.24)
		return TempPrefix + hex.EncodeToString(rnd[:])
	}
	openFile = (*os.Root).OpenFile
)
