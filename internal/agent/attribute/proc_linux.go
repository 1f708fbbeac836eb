//go:build linux

package attribute

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// maxCommFile bounds the read of /proc/PID/comm (TASK_COMM_LEN is 16; kernel threads'
// names can be a little longer, up to 64).
const maxCommFile = 256

// readProcess reads what attribution needs from procRoot/PID: comm, the exe link and the
// cgroup file. A pid that does not exist (any more) is an error wrapping fs.ErrNotExist.
func readProcess(procRoot string, pid int32) (Process, error) {
	dir := filepath.Join(procRoot, strconv.FormatInt(int64(pid), 10))
	comm, err := readLimited(filepath.Join(dir, "comm"), maxCommFile)
	if err != nil {
		return Process{}, fmt.Errorf("read comm of pid %d: %w", pid, err)
	}
	// One byte over the bound tells ParseCgroup the file was cut.
	cgroup, err := readLimited(filepath.Join(dir, "cgroup"), maxCgroupFile+1)
	if err != nil {
		return Process{}, fmt.Errorf("read cgroup of pid %d: %w", pid, err)
	}
	exe, err := os.Readlink(filepath.Join(dir, "exe"))
	if err != nil {
		// Kernel threads have no exe (ENOENT) and another user's process may be
		// unreadable (EACCES without CAP_SYS_PTRACE): no exe then. A vanished process is
		// an error, like a failed comm read.
		if _, statErr := os.Stat(dir); errors.Is(statErr, fs.ErrNotExist) {
			return Process{}, fmt.Errorf("read exe of pid %d: %w", pid, statErr)
		}
		exe = ""
	}
	p := Process{
		PID:  pid,
		Comm: string(bytes.TrimRight(comm, "\n")),
		Exe:  exe,
	}
	p.ContainerID, p.Runtime, p.PodUID = ParseCgroup(cgroup)
	return p, nil
}

// readLimited reads at most limit bytes of a file.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
