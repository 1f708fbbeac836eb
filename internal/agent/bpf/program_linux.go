//go:build linux

package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// program is one of the two BPF programs the sampler can load, both compiled
// from c/sampler.bpf.c and with the same maps.
type program int

const (
	// unwinderProgram walks user stacks with the unwind tables (x86-64, kernel
	// 5.17+: bpf_loop 5.17, bpf_task_pt_regs 5.15, bpf_get_current_task_btf 5.11).
	unwinderProgram program = iota
	// framePointerProgram takes user stacks by frame pointer only
	// (bpf_get_stack), as kprof did before the unwinder (-DKPROF_FP_ONLY).
	framePointerProgram
)

func (p program) String() string {
	if p == unwinderProgram {
		return "unwinder"
	}
	return "frame pointers only"
}

// unwinderHelpers are the helpers only the unwinder calls, with the kernel that
// brought each to perf_event programs.
var unwinderHelpers = []struct {
	fn     asm.BuiltinFunc
	kernel string
}{
	{asm.FnLoop, "5.17"},
	{asm.FnTaskPtRegs, "5.15"},
	{asm.FnGetCurrentTaskBtf, "5.11"},
}

// chooseProgram picks the program to load first, and says why when it is not the
// unwinder. haveHelper probes the kernel (features.HaveProgramHelper).
func chooseProgram(fpOnly bool, arch string, haveHelper func(asm.BuiltinFunc) error) (program, string) {
	switch {
	case fpOnly:
		return framePointerProgram, "Config.FramePointersOnly is set"
	case arch != "amd64":
		return framePointerProgram, "the unwinder supports x86-64 only, this is " + arch
	}
	for _, h := range unwinderHelpers {
		if err := haveHelper(h.fn); err != nil {
			return framePointerProgram, fmt.Sprintf("the kernel has no %s for perf_event programs (kernel %s+): %v", h.fn, h.kernel, err)
		}
	}
	return unwinderProgram, ""
}

// programSpec returns the embedded CollectionSpec of p.
func programSpec(p program) (*ebpf.CollectionSpec, error) {
	if p == unwinderProgram {
		return loadSampler()
	}
	return loadSamplerfp()
}

// loadObjects loads the program chooseProgram picks, and falls back to the
// frame-pointer-only program when the kernel refuses the unwinder for another
// reason than permissions (a verifier of an older kernel), logging one line
// whenever the unwinder is not loaded. load loads one program.
func loadObjects(cfg *Config, haveHelper func(asm.BuiltinFunc) error, load func(program) (*samplerObjects, error), log *slog.Logger) (*samplerObjects, program, error) {
	p, why := chooseProgram(cfg.FramePointersOnly, runtime.GOARCH, haveHelper)
	if p == unwinderProgram {
		objs, err := load(unwinderProgram)
		if err == nil {
			return objs, unwinderProgram, nil
		}
		if isPermission(err) {
			return nil, unwinderProgram, err
		}
		p, why = framePointerProgram, fmt.Sprintf("this kernel refused the unwinder: %v", err)
	}
	if !cfg.FramePointersOnly {
		log.Warn("bpf sampler: user stacks by frame pointer only, without unwind tables", "reason", why)
	}
	objs, err := load(framePointerProgram)
	return objs, p, err
}

// probeHelper is haveHelper on this kernel.
func probeHelper(fn asm.BuiltinFunc) error {
	err := features.HaveProgramHelper(ebpf.PerfEvent, fn)
	if errors.Is(err, ebpf.ErrNotSupported) {
		return err
	}
	// Another error (such as a permission) says nothing about the helper: try to load.
	return nil
}
