package collector

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/logging"
)

// Labeler gives the labels of a process's samples (attribute.Attributor).
type Labeler interface {
	Labels(pid int32) map[string]string
}

// Symbolizer names instruction addresses (symbolize.Symbolizer).
type Symbolizer interface {
	// Observe captures the mappings of pid; the collector calls it when it first
	// sees pid, so a process that exits later is still symbolized.
	Observe(pid int32) error
	User(pid int32, addrs []uint64) []profile.Frame
	Kernel(addrs []uint64) []profile.Frame
}

// forgetter is the optional part of a Symbolizer: the collector forgets a pid that
// had no sample in a whole interval, so a reused pid is observed afresh.
type forgetter interface {
	Forget(pid int32)
}

// Config configures a Collector.
type Config struct {
	// Collection is the validated collection config: event, period or frequency,
	// interval, and the name and version put on each Event.
	Collection collection.CollectionConfig
	// Node and Cluster are put on every Event's Labels when not empty.
	Node, Cluster string
	// Symbolizer is required.
	Symbolizer Symbolizer
	// Labeler labels samples by process; nil gives each sample only its pid label.
	Labeler Labeler
	// Publish receives each interval's Event; required. It is called from one
	// goroutine at a time and must not keep the Event's slices for modification.
	Publish func(*profile.Event)
	// Logger; nil discards.
	Logger *slog.Logger
	// ExcludePIDs are process ids whose samples are dropped in the kernel (the
	// agent's own).
	ExcludePIDs []uint32
	// ProcRoot is where the host's procfs is mounted, for the unwind table loader;
	// "" means /proc.
	ProcRoot string
	// Registerer receives the unwind table loader's metrics (labelled with the
	// collection's name); nil registers none.
	Registerer prometheus.Registerer
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every bad field by name.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Collection.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("Collection: %w", err))
	}
	if c.Symbolizer == nil {
		errs = append(errs, errors.New("Symbolizer: required"))
	}
	if c.Publish == nil {
		errs = append(errs, errors.New("Publish: required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("collector config: %w", err)
	}
	return nil
}

// timeEvent reports whether the event counts nanoseconds, so that a sample stands
// for its period of CPU time.
func timeEvent(event string) bool {
	return event == "cpu-clock" || event == "task-clock"
}
