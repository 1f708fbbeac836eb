//go:build linux

package symbolize

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// noOpenat2 is set once openat2 is found missing (Linux < 5.6).
var noOpenat2 atomic.Bool

// openInRoot opens path, absolute as a process sees it, under root (its
// /proc/PID/root). Symlinks are resolved inside root, so a container cannot point the
// agent at a host file, and the open does not block on a FIFO.
func openInRoot(root, path string) (*os.File, error) {
	const flags = unix.O_RDONLY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOCTTY
	full := filepath.Join(root, path)
	if !noOpenat2.Load() {
		dir, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: root, Err: err}
		}
		defer unix.Close(dir)
		how := &unix.OpenHow{Flags: flags, Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
		for attempt := 0; ; attempt++ {
			fd, err := unix.Openat2(dir, path, how)
			switch {
			case err == nil:
				return os.NewFile(uintptr(fd), full), nil
			case errors.Is(err, unix.ENOSYS):
				noOpenat2.Store(true)
			case (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) && attempt < 3:
				continue // a concurrent rename; the kernel asks to retry
			default:
				return nil, &os.PathError{Op: "openat2", Path: full, Err: err}
			}
			break
		}
	}
	return openRegular(full)
}

// openRegular opens path for reading without blocking on a FIFO or device.
func openRegular(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
}

// statID identifies an open file; only regular files are accepted.
func statID(f *os.File) (fileID, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileID{}, fmt.Errorf("stat: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return fileID{}, fmt.Errorf("%s: not a regular file (%s)", f.Name(), fi.Mode().Type())
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, fmt.Errorf("%s: no stat_t", f.Name())
	}
	return fileID{dev: uint64(st.Dev), ino: st.Ino, mtime: st.Mtim.Nano(), size: st.Size}, nil
}
