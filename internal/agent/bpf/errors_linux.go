//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Errors name what is missing: a capability, a sysctl, the memlock limit, a PMU.
// The explanation comes first and the kernel's error is wrapped after it, so that no
// caller ever sees a bare "operation not permitted".

func isPermission(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES)
}

// loadError explains a failure to create the maps or load the program.
func loadError(err error, caps capSet, capsErr error, ml memlock) error {
	if !isPermission(err) {
		return fmt.Errorf("loading the BPF sampler: %w", err)
	}
	if capsErr == nil {
		if missing := missingBPFCaps(caps); len(missing) > 0 {
			return fmt.Errorf("loading the BPF sampler needs %s (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN): %w",
				strings.Join(missing, " and "), err)
		}
	}
	if ml.limited {
		return fmt.Errorf("loading the BPF sampler: RLIMIT_MEMLOCK is %s, too low for its maps: this kernel (older "+
			"than 5.11) charges BPF memory to RLIMIT_MEMLOCK, and raising it needs CAP_SYS_RESOURCE on kernels older "+
			"than 5.11 (or a higher hard limit: LimitMEMLOCK=infinity, ulimit -l unlimited; cause: %v): %w", ml, ml.cause, err)
	}
	if capsErr != nil {
		return fmt.Errorf("loading the BPF sampler needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN); "+
			"the capabilities could not be read (%v): %w", capsErr, err)
	}
	return fmt.Errorf("loading the BPF sampler: denied although CAP_BPF and CAP_PERFMON are held: a security "+
		"policy forbids bpf() (SELinux/AppArmor, kernel lockdown, seccomp): %w", err)
}

// perfOpenError explains a failure of perf_event_open for event on cpu.
func perfOpenError(event string, cpu int, err error, caps capSet, capsErr error) error {
	switch {
	case isHardware(event) && (errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENODEV)):
		return fmt.Errorf("hardware event %s is not available on this machine (no PMU): use cpu-clock "+
			"(perf_event_open on CPU %d: %w)", event, cpu, err)
	case isPermission(err):
		why := "system-wide perf events need CAP_PERFMON (or CAP_SYS_ADMIN) or kernel.perf_event_paranoid <= 0"
		if capsErr == nil && !caps.canPerfmon() {
			why = "missing CAP_PERFMON: " + why
		}
		return fmt.Errorf("perf_event_open %s on CPU %d: %s (perf_event_paranoid is %s): %w",
			event, cpu, why, perfEventParanoid(), err)
	case errors.Is(err, unix.ENODEV) || errors.Is(err, unix.ENXIO):
		return fmt.Errorf("perf_event_open %s on CPU %d: the CPU is offline or does not exist (CPUs): %w", event, cpu, err)
	case errors.Is(err, unix.EMFILE) || errors.Is(err, unix.ENFILE):
		return fmt.Errorf("perf_event_open %s on CPU %d: out of file descriptors (RLIMIT_NOFILE): %w", event, cpu, err)
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("perf_event_open %s on CPU %d: the PMU is in exclusive use by another tool: %w", event, cpu, err)
	}
	return fmt.Errorf("perf_event_open %s on CPU %d: %w", event, cpu, err)
}
