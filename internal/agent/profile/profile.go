// Package profile defines the profile event the node agent hands to its router: the
// samples of one interval of one collection config, symbolized and attributed.
// Consumers (perf.data, pprof/Datadog, OTLP) convert it to their formats.
package profile

import (
	"math"
	"time"
)

// Event is one interval of one collector.
type Event struct {
	// Config is the ProfileCollectionConfig name; Version its version.
	Config  string
	Version int64
	// EventName is the perf event sampled: "cpu-clock", "task-clock", "page-faults",
	// "context-switches", "cpu-cycles", "instructions", "cache-misses".
	EventName string
	// Period is the sample period in event units (ns for cpu-clock/task-clock), or 0
	// when sampling by Frequency (Hz).
	Period    uint64
	Frequency uint64
	Start     time.Time
	End       time.Time
	// Labels common to every sample: node, cluster.
	Labels  map[string]string
	Samples []Sample
	// Stats of the interval (kernel-side drops, symbolization misses).
	Stats Stats
}

// PeriodNanos is the sampling period in nanoseconds of a time-based event:
// Period, else derived from Frequency, else 0. A Period beyond int64 saturates.
func (e *Event) PeriodNanos() int64 {
	switch {
	case e.Period > math.MaxInt64:
		return math.MaxInt64
	case e.Period > 0:
		return int64(e.Period)
	case e.Frequency > 0:
		return int64(1e9 / e.Frequency)
	}
	return 0
}

// Sample is a stack seen Count times in one thread.
type Sample struct {
	PID, TID int32
	// Frames from leaf to root: kernel frames first (Kernel true), then user frames.
	Frames []Frame
	// Count of samples; CPUTime is Count × the sampling period when the event
	// measures time (cpu-clock, task-clock), else 0.
	Count   uint64
	CPUTime time.Duration
	// Labels: pid, comm, exe, container_id, pod, namespace, container, pod_uid.
	Labels map[string]string
}

// Frame is one resolved (or unresolved) instruction address.
type Frame struct {
	Address  uint64
	Kernel   bool
	Function string // "" when unknown
	File     string
	Line     int
	Mapping  *Mapping // nil for kernel frames and unmapped addresses
}

// Mapping is a mapped file of a process.
type Mapping struct {
	Start, Limit, Offset uint64
	// File is the path as the process sees it, AnonMappingFile for anonymous
	// executable memory, or the kernel's name of a special mapping ("[vdso]").
	File    string
	BuildID string // hex GNU build ID (or Go build ID when no GNU note), "" when unknown
}

// AnonMappingFile is the File of a mapping of anonymous executable memory: code a
// process wrote at run time, in practice a JIT compiler's (Node, the JVM, .NET). Its
// functions are named from the process's perf map (/tmp/perf-PID.map), so a frame
// with a Function in such a mapping is JIT-compiled code named by its runtime. It is
// the name perf itself records for anonymous memory (and, at report time, looks up
// the perf map for), and google/pprof treats it as not symbolizable from a file.
const AnonMappingFile = "//anon"

// KernelMappingFile names the one mapping all kernel frames belong to, as perf
// and the pprof tool name it.
const KernelMappingFile = "[kernel.kallsyms]"

// Stats counts what was lost or unresolved in an interval.
type Stats struct {
	Samples            uint64 // samples in this event
	MapFullDrops       uint64 // samples dropped because the count or stack map was full
	UnsymbolizedUser   uint64 // user frames without a function name
	UnsymbolizedKernel uint64
	Unwind             UnwindStats
}

// UnwindStats says how the user stacks of an interval were walked in the kernel:
// the frames whose caller an unwind table found and those a frame pointer found,
// and why each stack ended (see internal/agent/bpf.UnwindStats).
type UnwindStats struct {
	FramesByTable, FramesByFramePointer    uint64
	Complete, NoRule, ReadError, Truncated uint64
}
