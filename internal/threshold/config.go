package threshold

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Capturer starts the capture of a pod whose usage crossed (c) at the time at. The
// operator creates a ProfileCapture, which its ProfileCapture controller executes.
// It must honour ctx.
type Capturer interface {
	Trigger(ctx context.Context, group string, t Target, c Crossing, at time.Time) error
}

// CooldownStore keeps the last trigger of each pod where a restart or a leader
// change finds it (the API server).
type CooldownStore interface {
	// LastTrigger returns the time of the pod's last recorded trigger, zero when none.
	// It is called for every target at every check and should read a cache.
	LastTrigger(group string, podUID types.UID) time.Time
	// Record notes the trigger BEFORE the capture starts; if it fails, the capture
	// must not start. (A store that is also a BatchRecorder gets RecordAll instead;
	// the operator's persists a check's triggers in the config's status in one write.)
	Record(ctx context.Context, group string, pod *corev1.Pod, at time.Time, reason string) error
}

// BatchRecorder is a CooldownStore that persists every trigger of one check in one
// write: the watcher calls RecordAll once per check, before any of its captures
// starts, instead of Record per pod. If it fails, none of them starts.
type BatchRecorder interface {
	RecordAll(ctx context.Context, group string, triggers []Record) error
}

// Record is one trigger for RecordAll.
type Record struct {
	Pod    *corev1.Pod
	At     time.Time
	Reason string
}

// Reporter turns the watcher's findings into conditions, Events and status. Its
// methods are called from the group's check loop and must not block for long.
type Reporter interface {
	// MetricsUnavailable reports that the group's usage could not be read
	// (err != nil) or can be read again (err == nil). Called on transitions only.
	MetricsUnavailable(group string, err error)
	// Uncomputable reports percentages that cannot be computed for pod, once per
	// pod per distinct problem set.
	Uncomputable(group string, pod *corev1.Pod, problems []string)
	// Triggered reports a capture started because of c.
	Triggered(group string, pod *corev1.Pod, c Crossing, latency Latency)
}

// Target is a pod the watcher evaluates; ID is its capture engine target ID.
type Target struct {
	ID  string
	Pod *corev1.Pod
}

// Policy is how a group is watched.
type Policy struct {
	// Namespace whose PodMetrics are read.
	Namespace string
	// Selector narrows the PodMetrics list; nil means every pod of Namespace.
	Selector labels.Selector
	Rule     Rule
	// CheckInterval between two checks (jittered by ±Config.Jitter). It also
	// bounds one read of usage.
	CheckInterval time.Duration
}

// Validate reports every problem of p by field name.
func (p Policy) Validate() error {
	var errs []error
	if err := p.Rule.Validate(); err != nil {
		errs = append(errs, err)
	}
	if p.CheckInterval <= 0 {
		errs = append(errs, fmt.Errorf("CheckInterval %s must be positive", p.CheckInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trigger policy: %w", err)
	}
	return nil
}

// Defaults applied by Config.SetDefaults.
const (
	DefaultJitter        = 0.1
	DefaultMaxInFlight   = 64
	DefaultRecordTimeout = 10 * time.Second
)

// Config configures a Watcher.
type Config struct {
	// Source reads usage. Required.
	Source Source
	// Capturer starts captures. Required.
	Capturer Capturer
	// Cooldowns persists triggers. Required.
	Cooldowns CooldownStore
	// Reporter receives findings; nil discards them.
	Reporter Reporter
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Jitter spreads checks: the first check of a group comes after a random
	// delay in [0, Jitter·CheckInterval], the next ones every CheckInterval ±
	// Jitter·CheckInterval. 0 < Jitter < 1, default 0.1.
	Jitter float64
	// MaxInFlight caps the Trigger calls outstanding per group; crossings beyond
	// it wait for the next check (counted as suppressed "busy"). Default 64.
	MaxInFlight int
	// RecordTimeout bounds one CooldownStore.Record. Default 10s.
	RecordTimeout time.Duration
	// Metrics, when set, receives the watcher's metrics.
	Metrics *Metrics
}

// SetDefaults fills in the zero optional fields.
func (c *Config) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	if c.Reporter == nil {
		c.Reporter = nopReporter{}
	}
	check.DefaultNow(&c.Now)
	check.Default(&c.Jitter, DefaultJitter)
	check.Default(&c.MaxInFlight, DefaultMaxInFlight)
	check.Default(&c.RecordTimeout, DefaultRecordTimeout)
}

// Validate reports every bad field by name; zero optional fields are valid
// (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.Source == nil {
		errs = append(errs, errors.New("Source is required"))
	}
	if c.Capturer == nil {
		errs = append(errs, errors.New("Capturer is required"))
	}
	if c.Cooldowns == nil {
		errs = append(errs, errors.New("Cooldowns is required"))
	}
	if c.Jitter != 0 && !(c.Jitter > 0 && c.Jitter < 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("Jitter %v is outside (0, 1)", c.Jitter))
	}
	if c.MaxInFlight < 0 {
		errs = append(errs, fmt.Errorf("MaxInFlight %d is negative", c.MaxInFlight))
	}
	if c.RecordTimeout < 0 {
		errs = append(errs, fmt.Errorf("RecordTimeout %s is negative", c.RecordTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("trigger watcher config: %w", err)
	}
	return nil
}

type nopReporter struct{}

func (nopReporter) MetricsUnavailable(string, error)                 {}
func (nopReporter) Uncomputable(string, *corev1.Pod, []string)       {}
func (nopReporter) Triggered(string, *corev1.Pod, Crossing, Latency) {}
