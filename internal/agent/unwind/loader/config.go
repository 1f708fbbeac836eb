package loader

import (
	"debug/elf"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/unwind"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Sampler is what the Loader uses of *bpf.Sampler.
type Sampler interface {
	// RowCapacity is the size of the kernel's row array.
	RowCapacity() uint32
	// WriteRows writes rows at [off, off+len(rows)) of the row array.
	WriteRows(off uint32, rows []unwind.Row) error
	// SetProcess sets the mappings of tgid, sorted by Start, at most bpf.MaxMappings.
	SetProcess(tgid uint32, maps []bpf.Mapping) error
	// DeleteProcess forgets tgid.
	DeleteProcess(tgid uint32) error
	// TakeUnknown returns the processes sampled since the last call without an
	// entry, or at a PC none of their mappings holds.
	TakeUnknown() ([]uint32, error)
}

// Defaults.
const (
	DefaultProcRoot        = "/proc"
	DefaultEvery           = 250 * time.Millisecond
	DefaultExitCheckEvery  = 2 * time.Second
	DefaultReloadEvery     = 2 * time.Second
	DefaultMaxLoadsPerTick = 64
	DefaultTickBudget      = 200 * time.Millisecond
	DefaultMaxPending      = 4096
	DefaultMaxCachedTables = 256
	DefaultMaxFileBytes    = 2 << 30
)

// Config configures a Loader.
type Config struct {
	// Sampler receives the tables and mappings; required.
	Sampler Sampler
	// ProcRoot is where the host's procfs is mounted. Default DefaultProcRoot.
	ProcRoot string
	// Build builds the unwind table of an ELF file. Default unwind's builder.
	Build func(*elf.File) (*unwind.Table, error)
	// Registerer receives the metrics; nil registers none. Loaders of several
	// collectors share one set of metrics, told apart by the label config = Name.
	Registerer prometheus.Registerer
	// Name is the config label of the metrics (the collection config's name).
	Name string
	// Logger; nil discards.
	Logger *slog.Logger

	// Every is the period of the loop that takes the unknown processes.
	Every time.Duration
	// ExitCheckEvery is how often the loaded processes are checked against procfs.
	ExitCheckEvery time.Duration
	// ReloadEvery is the shortest time between two loads of one process (a
	// process seen unknown again maps new code, or failed to load).
	ReloadEvery time.Duration
	// MaxLoadsPerTick bounds the processes loaded per tick; TickBudget bounds the
	// time a tick spends loading (at least one process is loaded per tick).
	MaxLoadsPerTick int
	TickBudget      time.Duration
	// MaxPending bounds the queue of processes waiting to be loaded; more are
	// dropped (the sampler reports them again).
	MaxPending int
	// MaxCachedTables bounds the tables kept in the kernel with no process using them.
	MaxCachedTables int
	// MaxMappings is how many mappings a process may have in the sampler. Default
	// bpf.MaxMappings.
	MaxMappings int
	// MaxFileBytes: larger ELF files get frame pointers. Default DefaultMaxFileBytes.
	MaxFileBytes int64
}

// settings are the optional periods and bounds and the logger, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("Every", &c.Every, DefaultEvery),
		check.Field("ExitCheckEvery", &c.ExitCheckEvery, DefaultExitCheckEvery),
		check.Field("ReloadEvery", &c.ReloadEvery, DefaultReloadEvery),
		check.Field("TickBudget", &c.TickBudget, DefaultTickBudget),
		check.Field("MaxLoadsPerTick", &c.MaxLoadsPerTick, DefaultMaxLoadsPerTick),
		check.Field("MaxPending", &c.MaxPending, DefaultMaxPending),
		check.Field("MaxCachedTables", &c.MaxCachedTables, DefaultMaxCachedTables),
		check.Field("MaxMappings", &c.MaxMappings, bpf.MaxMappings),
		check.Field("MaxFileBytes", &c.MaxFileBytes, DefaultMaxFileBytes),
		logging.Setting(&c.Logger),
	}
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	check.Default(&c.ProcRoot, DefaultProcRoot)
	if c.Build == nil {
		c.Build = defaultBuild
	}
	check.SetDefaults(c.settings()...)
}

// Validate reports every bad field by name; it changes nothing.
func (c *Config) Validate() error {
	var errs []error
	if c.Sampler == nil {
		errs = append(errs, errors.New("Sampler: required"))
	}
	if c.ProcRoot != "" && !filepath.IsAbs(c.ProcRoot) {
		errs = append(errs, fmt.Errorf("ProcRoot: %q is not an absolute path", c.ProcRoot))
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	if c.MaxMappings > bpf.MaxMappings {
		errs = append(errs, fmt.Errorf("MaxMappings: %d is above the sampler's %d", c.MaxMappings, bpf.MaxMappings))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("unwind loader config: %w", err)
	}
	return nil
}
