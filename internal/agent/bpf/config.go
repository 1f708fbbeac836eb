package bpf

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultEvent         = "cpu-clock"
	DefaultFrequency     = 99
	DefaultMaxStacks     = 16384
	DefaultMaxEntries    = 32768
	DefaultMaxUnwindRows = 1 << 21 // 32 MiB of 16-byte rows
	DefaultMaxProcesses  = 1024    // 8 MiB: 8200 bytes per process
	DefaultMaxUnknown    = 4096

	// MaxStackDepth is the number of frames kept per stack (PERF_MAX_STACK_DEPTH);
	// the C code's MAX_STACK_DEPTH, checked against the stack maps by a test.
	MaxStackDepth = 127

	// MaxMappings is the number of executable mappings one process can have in
	// the unwinder (Sampler.SetProcess); the C code's MAX_MAPPINGS.
	MaxMappings = 256

	// Upper bounds that keep a typo from asking the kernel for gigabytes: a stack
	// map entry is MaxStackDepth×8 bytes, and there are two stack maps.
	maxMaxStacks     = 1 << 18 // 2 × 256 MiB
	maxMaxEntries    = 1 << 22
	maxExclude       = 1 << 16
	maxMaxUnwindRows = 1 << 24 // 256 MiB
	maxMaxProcesses  = 1 << 14 // 128 MiB
	maxMaxUnknown    = 1 << 16
)

// Events lists the perf events Config.Event accepts.
var Events = []string{"cpu-clock", "task-clock", "page-faults", "context-switches", "cpu-cycles", "instructions", "cache-misses"}

// Config configures a Sampler. The zero value is valid: after SetDefaults, cpu-clock
// at 99 Hz on every online CPU.
type Config struct {
	// Event is the perf event to sample on, one of Events. Default cpu-clock.
	// cpu-cycles, instructions and cache-misses need a hardware PMU.
	Event string
	// SamplePeriod is the number of events per sample (nanoseconds for cpu-clock and
	// task-clock). 0 samples at Frequency instead; set at most one of the two.
	SamplePeriod uint64
	// Frequency is the number of samples per second per CPU, default 99 when
	// SamplePeriod is 0. At most kernel.perf_event_max_sample_rate (checked by Open).
	Frequency uint64
	// CPUs to sample on. Default: every online CPU (/sys/devices/system/cpu/online).
	CPUs []int
	// MaxStacks is the number of distinct stacks (user and kernel stacks share a
	// map) one interval can hold, default 16384. A sample whose stack does not fit
	// is not counted (Stats.MapFull, Stats.StackMapFull).
	MaxStacks uint32
	// MaxEntries is the number of distinct {tgid, pid, user stack, kernel stack}
	// counts one interval can hold, default 32768. Samples past it are counted in
	// Stats.MapFull only.
	MaxEntries uint32
	// ExcludePIDs are process ids (thread-group ids) whose samples are dropped in the
	// kernel, such as the agent's own (os.Getpid()).
	ExcludePIDs []uint32
	// IncludeIdle keeps samples of the idle task (pid 0), which are dropped by default.
	IncludeIdle bool

	// MaxUnwindRows is the number of unwind table rows (16 bytes each) the
	// unwinder holds for all processes together, default 2^21 (32 MiB), at most 2^24.
	MaxUnwindRows uint32
	// MaxProcesses is the number of processes with mappings in the unwinder
	// (Sampler.SetProcess), default 1024 (8200 bytes each).
	MaxProcesses uint32
	// MaxUnknown bounds the set of sampled processes the unwinder has no mappings
	// for (Sampler.TakeUnknown) between two takes, default 4096.
	MaxUnknown uint32
	// FramePointersOnly loads the frame-pointer-only program even where the
	// unwinder could run (as on kernels older than 5.17, or other than x86-64).
	FramePointersOnly bool
	// Logger receives the one line saying the unwinder could not be loaded.
	// Nil discards.
	Logger *slog.Logger

	// stackHashMask, when not 0, is ANDed with the stack hashes: tests make
	// stacks collide with it.
	stackHashMask uint64
}

// mapSize is a map size field: its default when zero and its upper bound.
type mapSize struct {
	name       string
	p          *uint32
	def, limit uint32
}

// mapSizes lists the map sizes, so that SetDefaults and Validate read one list.
func (c *Config) mapSizes() []mapSize {
	return []mapSize{
		{"MaxStacks", &c.MaxStacks, DefaultMaxStacks, maxMaxStacks},
		{"MaxEntries", &c.MaxEntries, DefaultMaxEntries, maxMaxEntries},
		{"MaxUnwindRows", &c.MaxUnwindRows, DefaultMaxUnwindRows, maxMaxUnwindRows},
		{"MaxProcesses", &c.MaxProcesses, DefaultMaxProcesses, maxMaxProcesses},
		{"MaxUnknown", &c.MaxUnknown, DefaultMaxUnknown, maxMaxUnknown},
	}
}

// SetDefaults fills in the zero fields: cpu-clock at 99 Hz unless a SamplePeriod is
// set, and the default map sizes.
func (c *Config) SetDefaults() {
	check.Default(&c.Event, DefaultEvent)
	if c.SamplePeriod == 0 {
		check.Default(&c.Frequency, DefaultFrequency)
	}
	for _, m := range c.mapSizes() {
		check.Default(m.p, m.def)
	}
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every bad field by name; zero values are valid (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.Event != "" && !slices.Contains(Events, c.Event) {
		errs = append(errs, fmt.Errorf("Event %q is not one of %s", c.Event, strings.Join(Events, ", ")))
	}
	switch {
	case c.SamplePeriod != 0 && c.Frequency != 0:
		errs = append(errs, fmt.Errorf("SamplePeriod %d and Frequency %d are both set: set one", c.SamplePeriod, c.Frequency))
	case c.SamplePeriod > 1<<63-1:
		errs = append(errs, fmt.Errorf("SamplePeriod %d is too large", c.SamplePeriod))
	}
	seen := make(map[int]bool, len(c.CPUs))
	for _, cpu := range c.CPUs {
		switch {
		case cpu < 0:
			errs = append(errs, fmt.Errorf("CPUs: %d is negative", cpu))
		case seen[cpu]:
			errs = append(errs, fmt.Errorf("CPUs: %d is listed twice", cpu))
		}
		seen[cpu] = true
	}
	for _, m := range c.mapSizes() {
		if *m.p > m.limit {
			errs = append(errs, fmt.Errorf("%s %d is above %d", m.name, *m.p, m.limit))
		}
	}
	if len(c.ExcludePIDs) > maxExclude {
		errs = append(errs, fmt.Errorf("ExcludePIDs has %d entries, more than %d", len(c.ExcludePIDs), maxExclude))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("bpf sampler config: %w", err)
	}
	return nil
}

// isHardware reports whether event needs a hardware PMU.
func isHardware(event string) bool {
	switch event {
	case "cpu-cycles", "instructions", "cache-misses":
		return true
	}
	return false
}
