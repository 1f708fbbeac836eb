// Package local is kprof's local mode: the `kprof run` config file, a Runner that drives
// the capture engine from it into a directory or, through a durable spool, into S3, and
// the helpers of `kprof capture` (pod resolution, progress display).
package local

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/storage"
)

// Defaults of the config file.
const (
	// DefaultCPUProfileDurationSeconds is `kprof capture`'s CPU profile length, and
	// `kprof run`'s when the schedule allows it (see capture.DefaultCPUDurationSecondsFor).
	DefaultCPUProfileDurationSeconds = capture.DefaultCPUDurationSeconds
	DefaultIntervalSeconds           = 60
	DefaultStoragePath               = "./profiles"
	DefaultMaxConcurrent             = 4
	DefaultMaxProfileBytes           = 64 << 20
	DefaultRequestTimeoutSeconds     = 30

	// MinIntervalSeconds is local mode's floor; the ProfilingConfig CRD asks for 30s in a cluster.
	MinIntervalSeconds       = 5
	maxCPUProfileSeconds     = 600
	maxMaxConcurrent         = 64
	minMaxProfileBytes       = 1 << 10
	maxMaxProfileBytes       = 1 << 30
	maxRequestTimeoutSeconds = 3600
	maxTargets               = 1000
	defaultOnDemandEnabled   = true
)

// DefaultProfileTypes are captured when profileTypes is omitted.
var DefaultProfileTypes = []string{string(capture.TypeCPU), string(capture.TypeHeap)}

// Config is the `kprof run` config file. Field names mirror the ProfilingConfig CRD spec.
type Config struct {
	Targets                   []TargetConfig `json:"targets"`
	ProfileTypes              []string       `json:"profileTypes,omitempty"`
	CPUProfileDurationSeconds int            `json:"cpuProfileDurationSeconds,omitempty"`
	OnDemand                  OnDemandConfig `json:"onDemand,omitempty"`
	Storage                   StorageConfig  `json:"storage,omitempty"`
	Limits                    LimitsConfig   `json:"limits,omitempty"`
}

// TargetConfig is one pprof endpoint to capture.
type TargetConfig struct {
	// Name identifies the target; unique within the file.
	Name string `json:"name"`
	// URL is the pprof prefix, e.g. http://127.0.0.1:6060/debug/pprof.
	URL    string            `json:"url"`
	Labels map[string]string `json:"labels,omitempty"`
	// Service names the profiled service; labels["service"], else Name, when empty.
	Service string `json:"service,omitempty"`
}

// OnDemandConfig is scheduled capture: every target, every IntervalSeconds.
type OnDemandConfig struct {
	// Enabled defaults to true.
	Enabled         *bool `json:"enabled,omitempty"`
	IntervalSeconds int   `json:"intervalSeconds,omitempty"`
}

// StorageConfig says where profiles go: below Local.Path by default, to S3 through
// the spool when S3 is set (then Local must not be set).
type StorageConfig struct {
	Local LocalStorageConfig `json:"local,omitempty"`
	S3    *S3StorageConfig   `json:"s3,omitempty"`
	Spool SpoolConfig        `json:"spool,omitempty"`
	// KeyTemplate defaults to storage.DefaultKeyTemplate.
	KeyTemplate string `json:"keyTemplate,omitempty"`
	Prefix      string `json:"prefix,omitempty"`
}

// LocalStorageConfig is a directory on this machine.
type LocalStorageConfig struct {
	Path string `json:"path,omitempty"`
}

// LimitsConfig bounds the capture engine.
type LimitsConfig struct {
	MaxConcurrent         int   `json:"maxConcurrent,omitempty"`
	MaxProfileBytes       int64 `json:"maxProfileBytes,omitempty"`
	RequestTimeoutSeconds int   `json:"requestTimeoutSeconds,omitempty"`
}

// SetDefaults fills in every omitted field.
func (c *Config) SetDefaults() {
	if len(c.ProfileTypes) == 0 {
		c.ProfileTypes = append([]string(nil), DefaultProfileTypes...)
	}
	if c.OnDemand.Enabled == nil {
		enabled := defaultOnDemandEnabled
		c.OnDemand.Enabled = &enabled
	}
	// A CPU profile's length and the interval follow each other (capture's rule): an
	// omitted interval fits the configured CPU profile, an omitted CPU profile length
	// fits the interval.
	if c.OnDemand.IntervalSeconds == 0 {
		c.OnDemand.IntervalSeconds = DefaultIntervalSeconds
		if c.CPUProfileDurationSeconds > 0 {
			c.OnDemand.IntervalSeconds = max(DefaultIntervalSeconds, capture.MinIntervalSecondsFor(c.CPUProfileDurationSeconds))
		}
	}
	if c.CPUProfileDurationSeconds == 0 {
		c.CPUProfileDurationSeconds = capture.DefaultCPUDurationSecondsFor(int(c.Interval() / time.Second))
	}
	if c.Storage.Local.Path == "" && c.Storage.S3 == nil {
		c.Storage.Local.Path = DefaultStoragePath
	}
	if c.Storage.KeyTemplate == "" {
		c.Storage.KeyTemplate = storage.DefaultKeyTemplate
	}
	c.Storage.setRemoteDefaults()
	c.Limits.setDefaults()
}

// Validate reports every invalid field of a defaulted config, each error naming the
// field path (targets[1].url, profileTypes[0], ...).
func (c *Config) Validate() error {
	var errs fieldErrors
	c.validateTargets(&errs)
	c.validateProfileTypes(&errs)
	c.validateSchedule(&errs)
	c.validateStorage(&errs)
	errs = append(errs, c.Limits.validate("limits")...)
	return errors.Join(errs...)
}

// fieldErrors collects the errors of a config file, each prefixed by its field path.
type fieldErrors []error

func (e *fieldErrors) add(field, format string, args ...any) {
	*e = append(*e, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

func (c *Config) validateTargets(errs *fieldErrors) {
	switch {
	case len(c.Targets) == 0:
		errs.add("targets", "at least one target is required")
	case len(c.Targets) > maxTargets:
		errs.add("targets", "at most %d targets, got %d", maxTargets, len(c.Targets))
	}
	seen := make(map[string]int, len(c.Targets))
	for i, t := range c.Targets {
		f := fmt.Sprintf("targets[%d]", i)
		switch {
		case strings.TrimSpace(t.Name) == "":
			errs.add(f+".name", "is required")
		default:
			if j, dup := seen[t.Name]; dup {
				errs.add(f+".name", "duplicate name %q (also targets[%d])", t.Name, j)
			} else {
				seen[t.Name] = i
			}
		}
		if _, err := NormalizeBaseURL(t.URL); err != nil {
			errs.add(f+".url", "%v", err)
		}
		for k := range t.Labels {
			if strings.TrimSpace(k) == "" {
				errs.add(f+".labels", "label names must not be empty")
			}
		}
	}
}

func (c *Config) validateProfileTypes(errs *fieldErrors) {
	if len(c.ProfileTypes) == 0 {
		errs.add("profileTypes", "at least one profile type is required")
	}
	seenTypes := make(map[string]int, len(c.ProfileTypes))
	for i, s := range c.ProfileTypes {
		f := fmt.Sprintf("profileTypes[%d]", i)
		if _, err := capture.ParseProfileType(s); err != nil {
			errs.add(f, "%v", err)
			continue
		}
		if j, dup := seenTypes[s]; dup {
			errs.add(f, "duplicate %q (also profileTypes[%d])", s, j)
		}
		seenTypes[s] = i
	}
}

// validateSchedule checks the CPU profile length against the interval: rounds of one
// target must never overlap.
func (c *Config) validateSchedule(errs *fieldErrors) {
	cpu := c.CPUProfileDurationSeconds
	if cpu < 1 || cpu > maxCPUProfileSeconds {
		errs.add("cpuProfileDurationSeconds", "must be from 1 to %d, got %d", maxCPUProfileSeconds, cpu)
	}
	if c.OnDemand.Enabled != nil && !*c.OnDemand.Enabled {
		return
	}
	iv := c.OnDemand.IntervalSeconds
	switch {
	case iv < MinIntervalSeconds:
		errs.add("onDemand.intervalSeconds", "must be >= %d, got %d", MinIntervalSeconds, iv)
	case !slices.Contains(c.ProfileTypes, string(capture.TypeCPU)):
	case capture.MaxCPUDurationSeconds(iv) < 1:
		errs.add("onDemand.intervalSeconds", "must be >= %d to profile cpu (a CPU profile must end 5 s before the "+
			"earliest next round, at intervalSeconds - ceil(intervalSeconds/10)), got %d", capture.MinIntervalSecondsFor(1), iv)
	case cpu > capture.MaxCPUDurationSeconds(iv):
		errs.add("cpuProfileDurationSeconds", "must be at most onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 = %d "+
			"so rounds of one target never overlap, got %d (omit it to get min(30, that bound), or make onDemand.intervalSeconds >= %d)",
			capture.MaxCPUDurationSeconds(iv), cpu, capture.MinIntervalSecondsFor(cpu))
	}
}

func (c *Config) validateStorage(errs *fieldErrors) {
	switch {
	case c.Storage.S3 != nil && c.Storage.Local.Path != "":
		errs.add("storage", "set at most one of storage.local and storage.s3 (as the ProfilingConfig CRD's localStorage and s3Config); "+
			"with storage.s3, profiles wait in storage.spool.path until S3 has them")
	case c.Storage.S3 == nil && strings.TrimSpace(c.Storage.Local.Path) == "":
		errs.add("storage.local.path", "is required")
	}
	if err := storage.ValidateKeyTemplate(c.Storage.KeyTemplate); err != nil {
		errs.add("storage.keyTemplate", "%v", err)
	}
	*errs = append(*errs, c.Storage.validateRemote(c.Limits.MaxProfileBytes)...)
}

// validate reports every bad limit, naming it below field.
func (l LimitsConfig) validate(field string) []error {
	var errs []error
	if n := l.MaxConcurrent; n < 1 || n > maxMaxConcurrent {
		errs = append(errs, fmt.Errorf("%s.maxConcurrent: must be from 1 to %d, got %d", field, maxMaxConcurrent, n))
	}
	if n := l.MaxProfileBytes; n < minMaxProfileBytes || n > maxMaxProfileBytes {
		errs = append(errs, fmt.Errorf("%s.maxProfileBytes: must be from %d to %d, got %d", field, minMaxProfileBytes, maxMaxProfileBytes, n))
	}
	if n := l.RequestTimeoutSeconds; n < 1 || n > maxRequestTimeoutSeconds {
		errs = append(errs, fmt.Errorf("%s.requestTimeoutSeconds: must be from 1 to %d, got %d", field, maxRequestTimeoutSeconds, n))
	}
	return errs
}

// setDefaults fills in omitted limits.
func (l *LimitsConfig) setDefaults() {
	check.Default(&l.MaxConcurrent, DefaultMaxConcurrent)
	check.Default(&l.MaxProfileBytes, DefaultMaxProfileBytes)
	check.Default(&l.RequestTimeoutSeconds, DefaultRequestTimeoutSeconds)
}

// Types returns the validated profile types.
func (c *Config) Types() []capture.ProfileType {
	out := make([]capture.ProfileType, 0, len(c.ProfileTypes))
	for _, s := range c.ProfileTypes {
		if t, err := capture.ParseProfileType(s); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// CPUDuration is cpuProfileDurationSeconds as a duration.
func (c *Config) CPUDuration() time.Duration {
	return time.Duration(c.CPUProfileDurationSeconds) * time.Second
}

// Interval is the scheduled capture interval, 0 when onDemand is disabled.
func (c *Config) Interval() time.Duration {
	if c.OnDemand.Enabled != nil && !*c.OnDemand.Enabled {
		return 0
	}
	return time.Duration(c.OnDemand.IntervalSeconds) * time.Second
}

// NormalizeBaseURL checks that raw is an http(s) URL and returns it as a pprof prefix
// without a trailing slash: both http://h:6060/debug/pprof and http://h:6060/debug/pprof/
// become http://h:6060/debug/pprof.
func NormalizeBaseURL(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("must be an http(s) URL such as http://127.0.0.1:6060/debug/pprof, got %q", raw)
	}
	if u.User != nil {
		return "", fmt.Errorf("must not contain credentials")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("must not have a query or fragment, got %q", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u.String(), nil
}
