//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// perfEvents maps Config.Event to perf_event_attr type and config.
var perfEvents = map[string]struct{ typ, config uint32 }{
	"cpu-clock":        {unix.PERF_TYPE_SOFTWARE, unix.PERF_COUNT_SW_CPU_CLOCK},
	"task-clock":       {unix.PERF_TYPE_SOFTWARE, unix.PERF_COUNT_SW_TASK_CLOCK},
	"page-faults":      {unix.PERF_TYPE_SOFTWARE, unix.PERF_COUNT_SW_PAGE_FAULTS},
	"context-switches": {unix.PERF_TYPE_SOFTWARE, unix.PERF_COUNT_SW_CONTEXT_SWITCHES},
	"cpu-cycles":       {unix.PERF_TYPE_HARDWARE, unix.PERF_COUNT_HW_CPU_CYCLES},
	"instructions":     {unix.PERF_TYPE_HARDWARE, unix.PERF_COUNT_HW_INSTRUCTIONS},
	"cache-misses":     {unix.PERF_TYPE_HARDWARE, unix.PERF_COUNT_HW_CACHE_MISSES},
}

// perfAttr is the perf_event_attr of cfg's event, created disabled: it is enabled
// once the program is attached.
func perfAttr(cfg *Config) unix.PerfEventAttr {
	ev := perfEvents[cfg.Event]
	attr := unix.PerfEventAttr{
		Type:   ev.typ,
		Config: uint64(ev.config),
		Size:   uint32(unsafe.Sizeof(unix.PerfEventAttr{})),
		Bits:   unix.PerfBitDisabled,
	}
	if cfg.SamplePeriod != 0 {
		attr.Sample = cfg.SamplePeriod
	} else {
		attr.Sample = cfg.Frequency
		attr.Bits |= unix.PerfBitFreq
	}
	return attr
}

// cpuEvent is the perf event of one CPU with the program attached.
type cpuEvent struct {
	cpu  int
	file *os.File  // the perf event fd
	link link.Link // nil when attached with PERF_EVENT_IOC_SET_BPF (kernels before 5.15)
}

// openCPUEvent opens cfg's event on cpu for every task, attaches prog and enables it.
func openCPUEvent(cfg *Config, cpu int, prog *ebpf.Program, caps capSet, capsErr error) (*cpuEvent, error) {
	attr := perfAttr(cfg)
	fd, err := unix.PerfEventOpen(&attr, -1, cpu, -1, unix.PERF_FLAG_FD_CLOEXEC)
	if err != nil {
		return nil, perfOpenError(cfg.Event, cpu, err, caps, capsErr)
	}
	ev := &cpuEvent{cpu: cpu, file: os.NewFile(uintptr(fd), fmt.Sprintf("perf_event:%s:cpu%d", cfg.Event, cpu))}
	if err := ev.attach(prog); err != nil {
		ev.close()
		return nil, fmt.Errorf("attaching the BPF sampler to %s on CPU %d: %w", cfg.Event, cpu, err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		ev.close()
		return nil, fmt.Errorf("enabling %s on CPU %d: %w", cfg.Event, cpu, err)
	}
	return ev, nil
}

// attach uses a BPF link (5.15+), falling back to PERF_EVENT_IOC_SET_BPF.
func (ev *cpuEvent) attach(prog *ebpf.Program) error {
	l, err := link.AttachRawLink(link.RawLinkOptions{
		Target:  int(ev.file.Fd()),
		Program: prog,
		Attach:  ebpf.AttachPerfEvent,
	})
	if err == nil {
		ev.link = l
		return nil
	}
	if !errors.Is(err, link.ErrNotSupported) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	if err := unix.IoctlSetInt(int(ev.file.Fd()), unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		return fmt.Errorf("PERF_EVENT_IOC_SET_BPF: %w", err)
	}
	return nil
}

func (ev *cpuEvent) close() error {
	var errs []error
	if ev.link != nil {
		errs = append(errs, ev.link.Close())
	}
	errs = append(errs, ev.file.Close())
	return errors.Join(errs...)
}
