//go:build linux

package bpf

import (
	"fmt"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// memlock is what prepareMemlock found out about RLIMIT_MEMLOCK.
type memlock struct {
	// limited is set when the kernel charges BPF memory to RLIMIT_MEMLOCK (before
	// 5.11, no memcg accounting) and the limit could not be removed: map creation
	// may then fail with EPERM for lack of locked memory.
	limited bool
	limit   uint64 // the soft limit in force then, in bytes
	cause   error  // why it could not be removed
}

// prepareMemlock leaves RLIMIT_MEMLOCK alone on kernels that account BPF memory to
// the memory cgroup (5.11 and later: rlimit.RemoveMemlock is then a no-op, decided by
// a probe the rlimit package ran at init). On older kernels RemoveMemlock raises the
// limit to infinity, which needs CAP_SYS_RESOURCE; without it the soft limit is
// raised to the hard limit (allowed to anyone), and Open says what is missing if
// the maps still do not fit.
func prepareMemlock() memlock {
	err := rlimit.RemoveMemlock()
	if err == nil {
		return memlock{}
	}
	var lim unix.Rlimit
	if gerr := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); gerr != nil {
		return memlock{limited: true, cause: err}
	}
	if lim.Cur < lim.Max {
		raised := unix.Rlimit{Cur: lim.Max, Max: lim.Max}
		if unix.Setrlimit(unix.RLIMIT_MEMLOCK, &raised) == nil {
			lim = raised
		}
	}
	return memlock{limited: true, limit: lim.Cur, cause: err}
}

func (m memlock) String() string {
	if !m.limited {
		return "not charged (memcg accounting)"
	}
	if m.limit == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return fmt.Sprintf("%d KiB", m.limit>>10)
}
