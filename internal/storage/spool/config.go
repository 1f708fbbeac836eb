package spool

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
	"github.com/kprof/kprof/internal/storage"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultMaxBytes      = 1 << 30
	DefaultMaxAge        = 24 * time.Hour
	DefaultWorkers       = 2
	DefaultMinBackoff    = time.Second
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultProbeInterval = time.Minute
	DefaultUploadTimeout = 2 * time.Minute
)

// Eviction reasons passed to Config.OnEvicted and used as the reason label of
// kprof_spool_evictions_total.
const (
	ReasonMaxBytes = "max-bytes"
	ReasonMaxAge   = "max-age"
	ReasonCorrupt  = "corrupt"
)

// Config configures a Spool. The zero value of every optional field is replaced
// by its default in SetDefaults.
type Config struct {
	// Dir is the spool directory, created when missing. One Spool (one process)
	// owns it; use one directory per remote store. Required.
	Dir string
	// Remote is where profiles go. Required.
	Remote storage.Store
	// MaxBytes bounds the bytes of profile data in the spool (sidecars are not
	// counted). When a Put would exceed it, the oldest entries are evicted first.
	// Default 1 GiB.
	MaxBytes int64
	// MaxAge evicts entries enqueued longer ago than this. Default 24h.
	MaxAge time.Duration
	// Workers is how many uploads run at once. Default 2.
	Workers int
	// MinBackoff and MaxBackoff bound the exponential backoff (lifecycle.Backoff)
	// between failed attempts of an entry, and the shared backoff while the remote
	// is down. Defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// ProbeInterval is how often the remote's Check (when Remote implements
	// storage.Checker) refreshes Health while no upload has told us anything for
	// that long: when idle, or when every entry is waiting out its backoff.
	// Default 60s.
	ProbeInterval time.Duration
	// UploadTimeout bounds one Remote.Put and one Check. Default 2m.
	UploadTimeout time.Duration
	// OnUploaded, when set, is called once per entry after the remote confirmed it
	// and its spool files were removed.
	OnUploaded func(key string, meta storage.Meta)
	// OnEvicted, when set, is called once per entry discarded without upload, with
	// reason ReasonMaxBytes, ReasonMaxAge or ReasonCorrupt. key is empty and meta
	// zero when the entry's sidecar was missing or unreadable.
	OnEvicted func(key string, meta storage.Meta, reason string)
	// OnHealth, when set, is called when the remote's health changes: nil when it
	// became healthy, else the error, when it became unhealthy or the kind of the
	// error changed. Calls are serialized and in order.
	OnHealth func(err error)
	// Metrics, when set, receives the spool's metrics, labelled store=Remote.String().
	Metrics *Metrics
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock of enqueue times and age eviction. Default time.Now.
	Now func() time.Time
}

// settings are the optional bounds, periods and timeouts, the logger and the clock,
// each with its default. An unset MaxBackoff is at least MinBackoff: a MinBackoff left unset takes
// DefaultMinBackoff, which is below DefaultMaxBackoff.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("MaxBytes", &c.MaxBytes, DefaultMaxBytes),
		check.Field("MaxAge", &c.MaxAge, DefaultMaxAge),
		check.Field("Workers", &c.Workers, DefaultWorkers),
		check.Field("MinBackoff", &c.MinBackoff, DefaultMinBackoff),
		check.Field("MaxBackoff", &c.MaxBackoff, max(DefaultMaxBackoff, c.MinBackoff)),
		check.Field("ProbeInterval", &c.ProbeInterval, DefaultProbeInterval),
		check.Field("UploadTimeout", &c.UploadTimeout, DefaultUploadTimeout),
		logging.Setting(&c.Logger),
		check.Clock(&c.Now),
	}
}

// SetDefaults fills in the zero optional fields and makes Dir absolute.
func (c *Config) SetDefaults() {
	if strings.TrimSpace(c.Dir) != "" {
		if abs, err := filepath.Abs(c.Dir); err == nil {
			c.Dir = abs
		}
	}
	check.SetDefaults(c.settings()...)
}

// Validate reports every bad field by name; zero optional fields are valid (SetDefaults
// fills them).
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Dir) == "" {
		errs = append(errs, errors.New("Dir is required"))
	} else if _, err := filepath.Abs(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("Dir %q: %w", c.Dir, err))
	}
	if c.Remote == nil {
		errs = append(errs, errors.New("Remote is required"))
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	errs = append(errs, check.NotBelow("MaxBackoff", c.MaxBackoff, "MinBackoff", c.MinBackoff))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool config: %w", err)
	}
	return nil
}
