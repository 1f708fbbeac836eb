// Package collection reads the agent's profile collection configs from a directory
// (in a cluster, a mounted ConfigMap) and reports which collectors must start,
// restart and stop as the files change.
//
// A file holds one config, in one of two forms. The envelope form is the one
// the seed agent reads (the "seed" is the design kprof grew out of; see
// docs/seed-mapping.md and TypeSeed), a base64 ProfileCollectionConfig
// protobuf message:
//
//	type:
//	  type: antimetal.agent.v1.ProfileCollectionConfig   # or kprof.agent.v1.ProfileCollectionConfig
//	name: cpu-profile
//	version: 1                                           # or "1"
//	data: CgljcHUtY2xvY2sQgJTr4gQYCg==
//
// The plain form is for people:
//
//	name: cpu-profile
//	version: 1
//	spec:
//	  event: cpu-clock
//	  samplePeriod: 10000000   # or frequency (Hz), not both
//	  intervalSeconds: 10
//
// Each name runs one collector; a higher version restarts it; a deleted file
// stops it. A file that cannot be read, parsed or validated is rejected with an
// error naming the file and the field, and the last good config of that file
// keeps running.
package collection

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Limits of a config.
const (
	// MaxFileSize bounds a config file; larger files are rejected unread.
	MaxFileSize = 1 << 20
	// MinInterval and MaxInterval bound a collection interval.
	MinInterval = time.Second
	MaxInterval = time.Hour
	// maxNameLen is the DNS-1123 label limit.
	maxNameLen = 63
)

// Events are the perf events a config may sample.
var Events = []string{
	"cpu-clock", "task-clock", "page-faults", "context-switches",
	"cpu-cycles", "instructions", "cache-misses",
}

// CollectionConfig is one validated profile collection config: what one
// collector samples and how often it hands an interval to the router.
type CollectionConfig struct {
	// Name identifies the collector; Version orders its configs (a higher
	// version restarts it).
	Name    string
	Version int64
	// Event is the perf event sampled, one of Events.
	Event string
	// SamplePeriod is the sample period in event units (ns for cpu-clock and
	// task-clock); Frequency the sampling frequency in Hz. Exactly one is set.
	SamplePeriod uint64
	Frequency    uint64
	// Interval is how long one profile covers, MinInterval to MaxInterval.
	Interval time.Duration
	// Source is the path of the file the config came from.
	Source string
}

// sameSpec reports whether two configs ask for the same collector (Source aside).
func sameSpec(a, b CollectionConfig) bool {
	a.Source, b.Source = "", ""
	return a == b
}

// FieldError is a config that was rejected: the file, the field (a path in the
// file, "" for the file as a whole) and why.
type FieldError struct {
	File  string
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// fieldNames says how each CollectionConfig field is spelt in one form of file,
// so that a validation error names what the author wrote.
type fieldNames struct {
	name, version, event, period, frequency, interval string
	// intervalSeconds: the file gives the interval as whole seconds.
	intervalSeconds bool
}

var goNames = fieldNames{
	name: "Name", version: "Version", event: "Event",
	period: "SamplePeriod", frequency: "Frequency", interval: "Interval",
}

// Validate reports every bad field of c by its Go name, joined.
func (c CollectionConfig) Validate() error {
	return joinFieldErrors(c.validate(goNames), "")
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func (c CollectionConfig) validate(n fieldNames) []*FieldError {
	var errs []*FieldError
	switch {
	case c.Name == "":
		errs = append(errs, fieldErr(n.name, "required"))
	case len(c.Name) > maxNameLen:
		errs = append(errs, fieldErr(n.name, "%q is longer than %d characters", c.Name, maxNameLen))
	case !dns1123Label.MatchString(c.Name):
		errs = append(errs, fieldErr(n.name, "%q must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending with a letter or digit", c.Name))
	}
	if c.Version < 0 {
		errs = append(errs, fieldErr(n.version, "must not be negative, got %d", c.Version))
	}
	switch {
	case c.Event == "":
		errs = append(errs, fieldErr(n.event, "required (one of %s)", strings.Join(Events, ", ")))
	case !slices.Contains(Events, c.Event):
		errs = append(errs, fieldErr(n.event, "unknown event %q (want one of %s)", c.Event, strings.Join(Events, ", ")))
	}
	switch {
	case c.SamplePeriod == 0 && c.Frequency == 0 && n.frequency == "":
		errs = append(errs, fieldErr(n.period, "must be greater than 0"))
	case c.SamplePeriod == 0 && c.Frequency == 0:
		errs = append(errs, fieldErr(n.period, "one of %s or %s must be greater than 0", n.period, n.frequency))
	case c.SamplePeriod > 0 && c.Frequency > 0:
		errs = append(errs, fieldErr(n.frequency, "set %s or %s, not both", n.period, n.frequency))
	}
	if c.Interval < MinInterval || c.Interval > MaxInterval {
		if n.intervalSeconds {
			errs = append(errs, fieldErr(n.interval, "must be from %d to %d seconds, got %d",
				MinInterval/time.Second, MaxInterval/time.Second, c.Interval/time.Second))
		} else {
			errs = append(errs, fieldErr(n.interval, "must be from %s to %s, got %s", MinInterval, MaxInterval, c.Interval))
		}
	}
	return errs
}

// joinFieldErrors sets File on each error and joins them; nil when there are none.
func joinFieldErrors(errs []*FieldError, file string) error {
	if len(errs) == 0 {
		return nil
	}
	all := make([]error, len(errs))
	for i, e := range errs {
		e.File = file
		all[i] = e
	}
	return errors.Join(all...)
}
