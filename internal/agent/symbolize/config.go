package symbolize

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults Config fills in.
const (
	DefaultProcRoot     = "/proc"
	DefaultMaxFiles     = 256
	DefaultMaxFileBytes = 2 << 30 // 2 GiB
	DefaultMaxProcesses = 4096
	// DefaultMaxCacheBytes bounds the estimated heap of the cached symbol tables; a
	// large Go binary's table takes 5 to 15 MiB.
	DefaultMaxCacheBytes = 64 << 20
	// DefaultMaxPerfMapBytes bounds the bytes read of one process's perf map; Node
	// writes about 100 bytes per compiled function.
	DefaultMaxPerfMapBytes = 64 << 20
	// DefaultMaxPerfMapEntries bounds the symbols kept of one process's perf map
	// (about 40 bytes each beside the file's text).
	DefaultMaxPerfMapEntries = 512 << 10
	// DefaultDebugDir is where separate debug files are installed (Debian's -dbg and
	// -dbgsym packages, Fedora's debuginfo): gdb's debug-file-directory.
	DefaultDebugDir = "/usr/lib/debug"
)

// Config configures a Symbolizer. Zero values mean the defaults.
type Config struct {
	// ProcRoot is where the host's procfs is mounted; "" means DefaultProcRoot.
	ProcRoot string
	// MaxFiles bounds the symbol tables cached (one per distinct build ID); 0 means
	// DefaultMaxFiles.
	MaxFiles int
	// MaxCacheBytes bounds the estimated heap held by the cached symbol tables: the
	// least recently used are evicted beyond it. A table larger on its own is not
	// cached (Stats.TablesOversized); the last such table is kept beside the cache
	// until 30 s after its last lookup; and the tables an open Batch uses are kept until
	// it is closed. So the heap bound is MaxCacheBytes plus the largest table in use
	// plus the tables open Batches hold (a collector holds those of its last interval
	// until the next one is symbolized). 0 means DefaultMaxCacheBytes.
	MaxCacheBytes int64
	// MaxFileBytes: larger ELF files are refused (counted in Stats); 0 means
	// DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxProcesses bounds the processes whose mappings are kept; the least recently
	// used is dropped beyond it. 0 means DefaultMaxProcesses.
	MaxProcesses int
	// MaxPerfMapBytes bounds the bytes read of each process's perf map
	// (/tmp/perf-PID.map, written by JIT compilers); the rest is not read (counted in
	// Stats.PerfMapsTruncated). 0 means DefaultMaxPerfMapBytes.
	MaxPerfMapBytes int64
	// MaxPerfMapEntries bounds the symbols kept of each process's perf map; 0 means
	// DefaultMaxPerfMapEntries.
	MaxPerfMapEntries int
	// DebugDir is the agent's own directory of separate debug files, searched for
	// the debug file of a stripped binary after the process's /usr/lib/debug (as gdb
	// searches the target's root, then the host's): by build ID under .build-id/, and
	// by .gnu_debuglink under the binary's directory. A DaemonSet mounts the host's
	// /usr/lib/debug there. "" means DefaultDebugDir.
	DebugDir string
	// Logger; nil discards.
	Logger *slog.Logger
}

// settings are the optional bounds and the logger, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("MaxFiles", &c.MaxFiles, DefaultMaxFiles),
		check.Field("MaxCacheBytes", &c.MaxCacheBytes, DefaultMaxCacheBytes),
		check.Field("MaxFileBytes", &c.MaxFileBytes, DefaultMaxFileBytes),
		check.Field("MaxProcesses", &c.MaxProcesses, DefaultMaxProcesses),
		check.Field("MaxPerfMapBytes", &c.MaxPerfMapBytes, DefaultMaxPerfMapBytes),
		check.Field("MaxPerfMapEntries", &c.MaxPerfMapEntries, DefaultMaxPerfMapEntries),
		logging.Setting(&c.Logger),
	}
}

// SetDefaults fills in the zero fields; New calls it before Validate.
func (c *Config) SetDefaults() {
	check.Default(&c.ProcRoot, DefaultProcRoot)
	check.SetDefaults(c.settings()...)
	check.Default(&c.DebugDir, DefaultDebugDir)
}

// Validate reports every invalid field, each by name. Zero values are valid (defaults).
func (c Config) Validate() error {
	var errs []error
	if c.ProcRoot != "" && !filepath.IsAbs(c.ProcRoot) {
		errs = append(errs, fmt.Errorf("ProcRoot: %q is not an absolute path", c.ProcRoot))
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	if c.DebugDir != "" && !filepath.IsAbs(c.DebugDir) {
		errs = append(errs, fmt.Errorf("DebugDir: %q is not an absolute path", c.DebugDir))
	}
	return errors.Join(errs...)
}
