package spool

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/kprof/kprof/internal/storage"
)

// Defaults applied by Config.Validate.
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
// by its default in Validate.
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
	// Logger receives structured logs; the zero value discards them.
	Logger logr.Logger
	// Now is the clock of enqueue times and age eviction. Default time.Now.
	Now func() time.Time
}

// Validate applies defaults, normalizes Dir to an absolute path and reports
// every bad field by name.
func (c *Config) Validate() error {
	var errs []error
	if strings.TrimSpace(c.Dir) == "" {
		errs = append(errs, errors.New("Dir is required"))
	} else if abs, err := filepath.Abs(c.Dir); err != nil {
		errs = append(errs, fmt.Errorf("Dir %q: %w", c.Dir, err))
	} else {
		c.Dir = abs
	}
	if c.Remote == nil {
		errs = append(errs, errors.New("Remote is required"))
	}
	switch {
	case c.MaxBytes == 0:
		c.MaxBytes = DefaultMaxBytes
	case c.MaxBytes < 0:
		errs = append(errs, fmt.Errorf("MaxBytes %d is negative", c.MaxBytes))
	}
	errs = appendDuration(errs, "MaxAge", &c.MaxAge, DefaultMaxAge)
	switch {
	case c.Workers == 0:
		c.Workers = DefaultWorkers
	case c.Workers < 0:
		errs = append(errs, fmt.Errorf("Workers %d is negative", c.Workers))
	}
	errs = appendDuration(errs, "MinBackoff", &c.MinBackoff, DefaultMinBackoff)
	errs = appendDuration(errs, "MaxBackoff", &c.MaxBackoff, max(DefaultMaxBackoff, c.MinBackoff))
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("MaxBackoff %s is below MinBackoff %s", c.MaxBackoff, c.MinBackoff))
	}
	errs = appendDuration(errs, "ProbeInterval", &c.ProbeInterval, DefaultProbeInterval)
	errs = appendDuration(errs, "UploadTimeout", &c.UploadTimeout, DefaultUploadTimeout)
	if c.Now == nil {
		c.Now = time.Now
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("spool config: %w", err)
	}
	return nil
}

// appendDuration defaults a zero duration and reports a negative one.
func appendDuration(errs []error, name string, d *time.Duration, def time.Duration) []error {
	switch {
	case *d == 0:
		*d = def
	case *d < 0:
		errs = append(errs, fmt.Errorf("%s %s is negative", name, *d))
	}
	return errs
}
