package nodethreshold

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Pinner keeps a pod's flight-recorder data from a time on, so that the operator, even
// a slow one, can still fetch the seconds before a crossing (the agent's flight recorder
// implements it). Pin must not block.
type Pinner interface {
	Pin(namespace, pod string, from time.Time)
}

// PodSource finds this node's pods; the attributor's pod informer implements it.
type PodSource interface {
	// PodByUID returns the pod with uid (not to be modified), nil when unknown. It must not block.
	PodByUID(uid string) *corev1.Pod
}

var _ PodSource = (*attribute.Attributor)(nil)

// Defaults applied by Config.SetDefaults.
const (
	DefaultWindow         = 30 * time.Second
	DefaultCreateTimeout  = 10 * time.Second
	DefaultInitialBackoff = 5 * time.Second
	DefaultMaxBackoff     = 5 * time.Minute
	DefaultMaxInFlight    = 16
)

// Config configures a Thresholds.
type Config struct {
	// NodeName is this node's name: the requester (kprof-agent/<node>) and the
	// profiling.io/node label of the ProfileCaptures. Required.
	NodeName string
	// REST reaches the API server: the ProfilingConfig watch and the ProfileCapture
	// creates. Required.
	REST *rest.Config
	// Pods finds this node's pods. Required.
	Pods PodSource
	// Pinner, when set, is told to keep a crossing pod's recorded data from
	// crossedAt - Window on.
	Pinner Pinner
	// Window is how far before a crossing the flight recorder's data is pinned (the
	// recorder's window). Default DefaultWindow.
	Window time.Duration
	// CreateTimeout bounds one ProfileCapture create. Default DefaultCreateTimeout.
	CreateTimeout time.Duration
	// InitialBackoff after a failed create of a (config, pod), doubled at each
	// further failure up to MaxBackoff. Defaults DefaultInitialBackoff, DefaultMaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
	// MaxInFlight bounds the creates running at once; crossings beyond it wait for
	// the next reading (suppressed "busy"). Default DefaultMaxInFlight.
	MaxInFlight int
	// Logger; nil discards.
	Logger *slog.Logger
	// Registry receives the metrics; nil registers nothing.
	Registry prometheus.Registerer
	// Now is the clock of the backoff after a failed create (crossings, cooldowns and
	// crossedAt run on the readings' times); default time.Now.
	Now func() time.Time
}

// settings are the optional durations and bounds, the logger and the clock, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("Window", &c.Window, DefaultWindow),
		check.Field("CreateTimeout", &c.CreateTimeout, DefaultCreateTimeout),
		check.Field("InitialBackoff", &c.InitialBackoff, DefaultInitialBackoff),
		check.Field("MaxBackoff", &c.MaxBackoff, DefaultMaxBackoff),
		check.Field("MaxInFlight", &c.MaxInFlight, DefaultMaxInFlight),
		logging.Setting(&c.Logger),
		check.Clock(&c.Now),
	}
}

// SetDefaults fills in the zero fields that have a default.
func (c *Config) SetDefaults() { check.SetDefaults(c.settings()...) }

// Validate reports every bad field by name; it changes nothing.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("NodeName: required"))
	}
	if c.REST == nil {
		errs = append(errs, errors.New("REST: required"))
	}
	if c.Pods == nil {
		errs = append(errs, errors.New("Pods: required"))
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	errs = append(errs, check.NotBelow("MaxBackoff", c.MaxBackoff, "InitialBackoff", c.InitialBackoff))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("node thresholds config: %w", err)
	}
	return nil
}
