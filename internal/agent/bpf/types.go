package bpf

import "errors"

// RawSample is one stack of one thread seen Count times in an interval, as the
// kernel recorded it: unsymbolized instruction addresses, leaf first.
type RawSample struct {
	TGID, PID uint32
	// User and Kernel are nil when the kernel had no stack for the sample: no user
	// stack (kernel threads), or an unreadable one.
	User, Kernel []uint64
	Count        uint64
}

// Stats of one interval, from the kernel.
type Stats struct {
	// MapFull counts samples that were not counted because the count map
	// (Config.MaxEntries) or the stack map (Config.MaxStacks) was full.
	MapFull uint64
	// StackMapFull counts the samples of MapFull lost to a full stack map.
	StackMapFull uint64
	// Samples counts samples taken (not excluded) in the interval: the sum of the
	// RawSample counts plus MapFull.
	Samples uint64

	// The unwinder's counters (0 with the frame-pointer-only program).
	Unwind UnwindStats
}

// UnwindStats counts how the unwinder walked the user stacks of an interval.
type UnwindStats struct {
	// FramesByTable and FramesByFramePointer count the user frames whose caller
	// was found with an unwind table row and with the frame pointer.
	FramesByTable, FramesByFramePointer uint64
	// Stacks end for one of these reasons. Complete: the outermost frame
	// (a table's CFAEnd, or a return address 0). NoRule: a frame with no row and
	// no usable frame pointer (RBP 0 or below RSP), the usual end of a
	// frame-pointer walk. ReadError: the stack could not be read. Truncated: the
	// stack was deeper than MaxStackDepth.
	Complete, NoRule, ReadError, Truncated uint64
	// UnknownReported counts processes added to the unknown set (TakeUnknown).
	UnknownReported uint64
}

// ErrClosed is returned by Drain after Close.
var ErrClosed = errors.New("bpf sampler is closed")

// ErrNoUnwinder is returned by the unwinder's methods when the
// frame-pointer-only program is loaded (Sampler.Unwinder is false).
var ErrNoUnwinder = errors.New("the bpf sampler runs the frame-pointer-only program: no unwind tables")

// Mapping is an executable mapping of a process for the unwinder: the
// instruction addresses [Start, End), whose ELF file addresses are address -
// Bias, and their unwind table rows [RowOff, RowOff+RowLen) (written with
// Sampler.WriteRows). RowLen 0 means no table: the frame pointer unwinds these
// frames (as for Go binaries).
type Mapping struct {
	Start, End, Bias uint64
	RowOff, RowLen   uint32
}
