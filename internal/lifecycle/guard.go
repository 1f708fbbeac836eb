package lifecycle

import (
	"context"
	"errors"
)

// The errors of a Start the Guard refuses. A component wraps them with its name
// ("start capture engine: already shut down"); callers test them with errors.Is.
var (
	ErrAlreadyStarted = errors.New("already started")
	ErrShutDown       = errors.New("already shut down")
)

// Guard is the state machine every component's Start and Shutdown share: Start
// succeeds once and never after Shutdown; Shutdown is idempotent and safe without
// Start. The zero value is a component that has not started.
//
// A Guard has no lock of its own: keep it under the mutex that guards what Start
// and Shutdown change, so that the state and the component never disagree (a Sync
// that reads Running under that mutex sees the groups Start saw). A Start that
// fails after the Guard let it through still counts as a start: the component is
// shut down next, not started again.
type Guard struct {
	started, shutDown bool
}

// Start records a start. It fails with ctx's error when ctx is done, with
// ErrShutDown after Shutdown and with ErrAlreadyStarted after a Start.
func (g *Guard) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	switch {
	case g.shutDown:
		return ErrShutDown
	case g.started:
		return ErrAlreadyStarted
	}
	g.started = true
	return nil
}

// Shutdown records a shutdown and reports whether it is the first one: the caller
// releases what Start took only then.
func (g *Guard) Shutdown() (first bool) {
	first = !g.shutDown
	g.shutDown = true
	return first
}

// Started reports whether Start succeeded, whether or not Shutdown came since.
func (g *Guard) Started() bool { return g.started }

// ShutDown reports whether Shutdown was called.
func (g *Guard) ShutDown() bool { return g.shutDown }

// Running reports whether Start succeeded and Shutdown has not been called.
func (g *Guard) Running() bool { return g.started && !g.shutDown }
