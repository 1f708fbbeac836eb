package usage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults and bounds of Config.
const (
	DefaultRoot       = "/sys/fs/cgroup"
	DefaultInterval   = time.Second
	MinInterval       = 100 * time.Millisecond
	DefaultMaxCgroups = 4096
)

// PodLookup names the pods and containers the cgroup paths identify. The attribute
// package's *attribute.Attributor satisfies it with its node-scoped pod informer.
type PodLookup interface {
	// LookupPod returns the name and namespace of the pod holding container containerID,
	// else of the pod with UID podUID, and the container's name when matched by ID ("" when
	// matched by pod UID only); ok is false when neither is known. It must not block.
	LookupPod(podUID, containerID string) (name, namespace, container string, ok bool)
}

var _ PodLookup = (*attribute.Attributor)(nil)

// Config configures a Reader.
type Config struct {
	// Root is where the cgroup filesystem(s) are mounted; "" means DefaultRoot.
	Root string
	// Interval between readings once started; 0 means DefaultInterval, at least MinInterval.
	Interval time.Duration
	// Publish receives every reading of the loop started by Start (required). It is called
	// from one goroutine, one reading at a time, and should not block long: Shutdown waits
	// for a Publish in progress.
	Publish func(*profile.Metrics)
	// Labels are copied into every reading's Metrics.Labels: node, cluster.
	Labels map[string]string
	// Pods names pods and containers; nil means points carry only container_id and pod_uid.
	Pods PodLookup
	// Extra returns points appended to every reading (the agent's own counters); optional.
	Extra func(now time.Time) []profile.Point
	// MaxCgroups bounds the cgroup directories visited per hierarchy in one reading (and
	// in one search for the kubepods trees); 0 means DefaultMaxCgroups. Past it the reading
	// leaves the rest out (counted in Stats.Truncated, logged).
	MaxCgroups int
	// Logger; nil discards.
	Logger *slog.Logger
}

// SetDefaults fills in the zero fields; New calls it before Validate.
func (c *Config) SetDefaults() {
	check.Default(&c.Root, DefaultRoot)
	check.Default(&c.Interval, DefaultInterval)
	check.Default(&c.MaxCgroups, DefaultMaxCgroups)
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every invalid field, each by name. Zero values are valid (defaults)
// except Publish, which is required.
func (c Config) Validate() error {
	var errs []error
	if c.Root != "" {
		if fi, err := os.Stat(c.Root); err != nil {
			errs = append(errs, fmt.Errorf("Root: %w", err))
		} else if !fi.IsDir() {
			errs = append(errs, fmt.Errorf("Root: %s is not a directory", c.Root))
		}
	}
	if c.Interval < 0 {
		errs = append(errs, fmt.Errorf("Interval: %s is negative", c.Interval))
	} else if c.Interval != 0 && c.Interval < MinInterval {
		errs = append(errs, fmt.Errorf("Interval: %s is below the minimum %s", c.Interval, MinInterval))
	}
	if c.Publish == nil {
		errs = append(errs, errors.New("Publish: required"))
	}
	for k := range c.Labels {
		if k == "" {
			errs = append(errs, errors.New("Labels: a label has an empty name"))
			break
		}
	}
	if c.MaxCgroups < 0 {
		errs = append(errs, fmt.Errorf("MaxCgroups: %d is negative", c.MaxCgroups))
	}
	return errors.Join(errs...)
}
