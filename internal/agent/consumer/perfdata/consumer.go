package perfdata

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/kprof/kprof/internal/agent/consumer/retain"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/config/check"
)

var _ router.Consumer = (*Consumer)(nil)

// Defaults applied by Config.SetDefaults.
const (
	DefaultRotateEvery  = time.Minute
	DefaultMaxFileBytes = 64 << 20
	DefaultMaxFiles     = 60
)

// Config configures a Consumer.
type Config struct {
	// Dir receives perf-YYYYMMDD-HHMMSS.data files. Required.
	Dir string
	// RotateEvery is the longest time one file stays open. Default 1m.
	RotateEvery time.Duration
	// MaxFileBytes finalizes a file once it holds this many bytes (checked
	// after each event). Default 64 MiB.
	MaxFileBytes int64
	// MaxFiles is how many finished files are kept; older ones are removed.
	// Default 60.
	MaxFiles int
	// MaxTotalBytes bounds the bytes of finished files kept; 0 means no bound.
	MaxTotalBytes int64
}

// settings are the optional rotation bounds, each with its default (MaxTotalBytes's,
// 0, is no bound).
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("RotateEvery", &c.RotateEvery, DefaultRotateEvery),
		check.Field("MaxFileBytes", &c.MaxFileBytes, DefaultMaxFileBytes),
		check.Field("MaxFiles", &c.MaxFiles, DefaultMaxFiles),
		check.Field("MaxTotalBytes", &c.MaxTotalBytes, 0),
	}
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() { check.SetDefaults(c.settings()...) }

// Validate reports every bad field by name; zero values other than Dir's are valid.
func (c *Config) Validate() error {
	var errs []error
	if c.Dir == "" {
		errs = append(errs, errors.New("Dir: required"))
	}
	return errors.Join(append(errs, check.NotNegatives(c.settings()...))...)
}

// Consumer writes events to rotating perf.data files in Config.Dir. A file
// holds events of one event name and period; an event of another starts a
// new file. Files are written as temp files and renamed when finalized (on
// rotation and Shutdown), so Dir only ever shows complete perf.data files.
type Consumer struct {
	cfg    Config
	now    func() time.Time
	cur    *stream
	opened time.Time
	closed bool
}

// New fills in cfg's defaults, validates it and creates Dir.
func New(cfg Config) (*Consumer, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("perfdata: %w", err)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("perfdata: create dir: %w", err)
	}
	return &Consumer{cfg: cfg, now: time.Now}, nil
}

// Name implements router.Consumer.
func (c *Consumer) Name() string { return "perfdata" }

// Consume appends ev to the current file, rotating first when the file is
// too old or holds another event kind, and after when it is too large.
func (c *Consumer) Consume(ctx context.Context, ev *profile.Event) error {
	if c.closed {
		return errors.New("perfdata: consume after shutdown")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("perfdata: consume: %w", err)
	}
	now := c.now()
	if c.cur != nil && (now.Sub(c.opened) >= c.cfg.RotateEvery ||
		c.cur.evName != ev.EventName || c.cur.period != samplePeriodOf(ev)) {
		if err := c.rotate(); err != nil {
			return err
		}
	}
	if c.cur == nil && len(ev.Samples) == 0 {
		return nil // perf rejects a file without data: open none for an empty event
	}
	if c.cur == nil {
		s, err := create(c.nextPath(now), ev)
		if err != nil {
			return err
		}
		c.cur, c.opened = s, now
	}
	if err := c.cur.add(ev); err != nil {
		c.cur.abort()
		c.cur = nil
		return err
	}
	if c.cur.size() >= c.cfg.MaxFileBytes {
		return c.rotate()
	}
	return nil
}

// nextPath names a file by its open time, adding -N when that name is taken.
func (c *Consumer) nextPath(now time.Time) string {
	return retain.FreeName(c.cfg.Dir, "perf-", now.UTC().Format("20060102-150405"), ".data")
}

func (c *Consumer) rotate() error {
	if c.cur == nil {
		return nil
	}
	err := c.cur.finish()
	c.cur = nil
	return errors.Join(err, c.retain())
}

// retain removes the oldest finished files beyond MaxFiles or MaxTotalBytes.
func (c *Consumer) retain() error {
	if err := retain.Prune(retain.Policy{Dir: c.cfg.Dir, Prefix: "perf-", Suffix: ".data",
		MaxFiles: c.cfg.MaxFiles, MaxBytes: c.cfg.MaxTotalBytes}); err != nil {
		return fmt.Errorf("perfdata: %w", err)
	}
	return nil
}

// Shutdown finalizes the current file. It is idempotent and safe without
// any Consume.
func (c *Consumer) Shutdown(ctx context.Context) error {
	if c.closed {
		return nil
	}
	c.closed = true
	return c.rotate()
}
