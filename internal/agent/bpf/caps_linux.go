//go:build linux

package bpf

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Capability numbers (linux/capability.h); CAP_PERFMON and CAP_BPF exist since 5.8.
const (
	capSysAdmin    = 21
	capSysResource = 24
	capPerfmon     = 38
	capBPF         = 39
)

// capSet is a set of effective capabilities, bit n for capability n.
type capSet uint64

func (c capSet) has(capability int) bool { return c&(1<<capability) != 0 }

// canBPF mirrors the kernel's bpf_capable(): CAP_BPF or CAP_SYS_ADMIN.
func (c capSet) canBPF() bool { return c.has(capBPF) || c.has(capSysAdmin) }

// canPerfmon mirrors perfmon_capable(): CAP_PERFMON or CAP_SYS_ADMIN.
func (c capSet) canPerfmon() bool { return c.has(capPerfmon) || c.has(capSysAdmin) }

// effectiveCaps returns the calling thread's effective capabilities. All threads of a
// Go program share them unless changed with raw capset(2), which kprof does not do.
func effectiveCaps() (capSet, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return 0, fmt.Errorf("capget: %w", err)
	}
	return capSet(uint64(data[1].Effective)<<32 | uint64(data[0].Effective)), nil
}

// missingBPFCaps names the capabilities loading and attaching the sampler needs and
// caps lacks: CAP_BPF to create maps and load programs, CAP_PERFMON for a
// perf_event program and for system-wide perf events (CAP_SYS_ADMIN covers both,
// and is what kernels before 5.8 need).
func missingBPFCaps(caps capSet) []string {
	var missing []string
	if !caps.canBPF() {
		missing = append(missing, "CAP_BPF")
	}
	if !caps.canPerfmon() {
		missing = append(missing, "CAP_PERFMON")
	}
	return missing
}

// perfEventParanoid returns kernel.perf_event_paranoid, or "unknown".
func perfEventParanoid() string {
	return readSysctl("/proc/sys/kernel/perf_event_paranoid")
}

func readSysctl(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// maxSampleRate returns kernel.perf_event_max_sample_rate, 0 when unknown.
func maxSampleRate() uint64 {
	v, err := strconv.ParseUint(readSysctl("/proc/sys/kernel/perf_event_max_sample_rate"), 10, 64)
	if err != nil {
		return 0
	}
	return v
}
