package profdiff

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/kprof/kprof/internal/index"
)

// BaseWindow is how far back from a threshold capture its default base reaches.
const BaseWindow = time.Hour

// Baseline is the default base of a threshold capture (see DefaultBase).
type Baseline struct {
	// Target is the threshold capture.
	Target index.Entry
	// Filter selected the base: the target's namespace, service and type, scheduled,
	// in BaseWindow before the target's CapturedAt.
	Filter index.Filter
	// Inputs are the base's profiles, oldest first.
	Inputs []Input
}

// String says what the base is: how many profiles, of what, captured when.
func (b *Baseline) String() string {
	first, last := b.Inputs[0].Entry.CapturedAt, b.Inputs[len(b.Inputs)-1].Entry.CapturedAt
	word := "profiles"
	if len(b.Inputs) == 1 {
		word = "profile"
	}
	return fmt.Sprintf("%d scheduled %s %s of %s captured from %s to %s, in the hour before the threshold capture at %s",
		len(b.Inputs), b.Target.Type, word, serviceName(b.Target), stamp(first), stamp(last), stamp(b.Target.CapturedAt))
}

// DefaultBase selects the base of target, a threshold capture of x: the scheduled
// profiles of target's type, namespace and service captured in the BaseWindow before
// target's CapturedAt, which a spike is compared against. It is an error naming the
// service and the window when there are none, and when target is no threshold capture
// or lacks the metadata to find its base.
func DefaultBase(ctx context.Context, x index.Index, target index.Entry) (*Baseline, error) {
	switch {
	case target.Trigger != index.TriggerThreshold:
		trigger := target.Trigger
		if trigger == "" {
			trigger = "unknown"
		}
		return nil, fmt.Errorf("%s %w (trigger %s): only a threshold capture has a default base; name the base", target.ID, ErrNotThreshold, trigger)
	case target.Service == "" || target.Type == "" || target.CapturedAt.IsZero():
		return nil, fmt.Errorf("threshold capture %s: its service, type or capture time is unknown, so %w can be found; name the base", target.ID, ErrNoBase)
	}
	f := index.Filter{Namespace: target.Namespace, Service: target.Service, Type: target.Type,
		Reason: index.TriggerSchedule, From: target.CapturedAt.Add(-BaseWindow), To: target.CapturedAt}
	es, err := x.List(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("default base of %s: %w", target.ID, err)
	}
	b := &Baseline{Target: target, Filter: f}
	for _, e := range es {
		if e.Trigger == index.TriggerSchedule { // not a reason that merely mentions "schedule"
			b.Inputs = append(b.Inputs, EntryInput(x, e))
		}
	}
	if len(b.Inputs) == 0 {
		return nil, &NoBaseError{Target: target, From: f.From, To: f.To, Store: x.String()}
	}
	return b, nil
}

// NoBaseError is DefaultBase finding no scheduled profiles before a threshold capture.
type NoBaseError struct {
	Target   index.Entry
	From, To time.Time
	Store    string
}

func (e *NoBaseError) Error() string {
	return fmt.Sprintf("no scheduled %s profiles of %s in the hour before the threshold capture at %s (from %s to %s) in %s to use as the base; name the base",
		e.Target.Type, serviceName(e.Target), stamp(e.Target.CapturedAt), stamp(e.From), stamp(e.To), e.Store)
}

// Errors of DefaultBase: ErrNoBase matches a NoBaseError too.
var (
	ErrNoBase       = errors.New("no default base")
	ErrNotThreshold = errors.New("is not a threshold capture")
)

func (e *NoBaseError) Is(target error) bool { return target == ErrNoBase }

func serviceName(e index.Entry) string {
	if e.Namespace == "" {
		return e.Service
	}
	return e.Namespace + "/" + e.Service
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }
