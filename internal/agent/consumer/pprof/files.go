package pprof

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/kprof/kprof/internal/agent/consumer/retain"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/config/check"
)

var _ router.Consumer = (*Files)(nil)

// DefaultMaxFiles is how many .pb.gz files Files keeps by default.
const DefaultMaxFiles = 1000

// FilesConfig configures a Files consumer.
type FilesConfig struct {
	// Dir receives one pprof-CONFIG-YYYYMMDD-HHMMSS.pb.gz file per event. Required.
	Dir string
	// MaxFiles is how many files of each config are kept; older ones are
	// removed. Default 1000.
	MaxFiles int
	// MaxTotalBytes bounds the bytes of each config's files; 0 means no bound.
	MaxTotalBytes int64
}

// SetDefaults fills in the zero fields.
func (c *FilesConfig) SetDefaults() { check.Default(&c.MaxFiles, DefaultMaxFiles) }

// Validate reports every bad field by name; zero values other than Dir's are valid.
func (c *FilesConfig) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir: required"))
	}
	return errors.Join(append(errs, check.NotNegative("MaxFiles", c.MaxFiles), check.NotNegative("MaxTotalBytes", c.MaxTotalBytes))...)
}

// Files writes each event as a gzipped pprof profile (what `go tool pprof`
// opens) into FilesConfig.Dir, atomically: written to a temp file, synced,
// renamed. Events without samples write nothing.
type Files struct {
	cfg    FilesConfig
	closed bool
}

// NewFiles fills in cfg's defaults, validates it and creates Dir.
func NewFiles(cfg FilesConfig) (*Files, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pprof files: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("pprof files: create dir: %w", err)
	}
	return &Files{cfg: cfg}, nil
}

// Name implements router.Consumer.
func (f *Files) Name() string { return "pprof-files" }

// unsafeName matches what may not appear in a file name taken from a config name.
var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Consume writes ev to its own file, then applies the retention bounds.
func (f *Files) Consume(ctx context.Context, ev *profile.Event) error {
	if f.closed {
		return errors.New("pprof files: consume after shutdown")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pprof files: consume: %w", err)
	}
	if len(ev.Samples) == 0 {
		return nil
	}
	data, err := Encode(ev)
	if err != nil {
		return fmt.Errorf("pprof files: %w", err)
	}
	name := unsafeName.ReplaceAllString(ev.Config, "_")
	if name == "" {
		name = "profile"
	}
	path := retain.FreeName(f.cfg.Dir, "pprof-"+name+"-", ev.Start.UTC().Format("20060102-150405"), ".pb.gz")
	if err := writeAtomic(path, data); err != nil {
		return fmt.Errorf("pprof files: %w", err)
	}
	// The bounds apply to each config's files (they share a name prefix).
	if err := retain.Prune(retain.Policy{Dir: f.cfg.Dir, Prefix: "pprof-" + name + "-", Suffix: ".pb.gz",
		MaxFiles: f.cfg.MaxFiles, MaxBytes: f.cfg.MaxTotalBytes}); err != nil {
		return fmt.Errorf("pprof files: %w", err)
	}
	return nil
}

// Shutdown implements router.Consumer; every file is complete once written.
func (f *Files) Shutdown(context.Context) error {
	f.closed = true
	return nil
}

// writeAtomic writes data to a temp file beside path, syncs and renames it, so
// the directory only ever shows complete files.
func writeAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
	return err
}
