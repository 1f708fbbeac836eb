package bpf

import "errors"

// RawSample is one stack of one thread seen Count times in an interval, as the
// kernel recorded it: unsymbolized instruction addresses, leaf first.
type RawSample struct {
	TGID, PID uint32
	// User and Kernel are nil when the kernel had no stack for the sample: no user
	// stack (kernel threads, or a sample that interrupted kernel code with no user
	// context), an unreadable stack, or a stack-map collision (Stats.Collisions).
	User, Kernel []uint64
	Count        uint64
}

// Stats of one interval, from the kernel.
type Stats struct {
	// Collisions counts stacks dropped because their stack-map bucket held another
	// stack; the sample is still counted, without that stack. Many collisions mean
	// Config.MaxStacks is too small.
	Collisions uint64
	// MapFull counts samples that were not counted because the count map was full
	// (Config.MaxEntries).
	MapFull uint64
	// Samples counts samples taken (not excluded) in the interval: the sum of the
	// RawSample counts plus MapFull.
	Samples uint64
}

// ErrClosed is returned by Drain after Close.
var ErrClosed = errors.New("bpf sampler is closed")
