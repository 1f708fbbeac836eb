package lifecycle

import (
	"context"
	"errors"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// Component is a part with kprof's lifecycle: Start returns quickly and keeps no ctx
// for background work; Shutdown is idempotent and safe without Start.
type Component interface {
	Start(ctx context.Context) error
	Shutdown(ctx context.Context) error
}

// Failer is a Component that can stop on its own after Start (a server whose
// listener broke); Err receives why.
type Failer interface {
	Err() <-chan error
}

// RunnableOptions configure Runnable.
type RunnableOptions struct {
	// ShutdownGrace bounds Shutdown once the manager stops.
	ShutdownGrace time.Duration
	// EveryReplica runs the component on every replica, not only on the elected leader.
	EveryReplica bool
}

// Runnable adapts c to controller-runtime's manager: Start when the manager starts it,
// Shutdown (within ShutdownGrace) when the manager's context ends or, for a Failer,
// when c fails on its own; the failure stops the manager.
func Runnable(c Component, o RunnableOptions) manager.Runnable {
	return runnable{c: c, o: o}
}

type runnable struct {
	c Component
	o RunnableOptions
}

var _ manager.LeaderElectionRunnable = runnable{}

// NeedLeaderElection implements manager.LeaderElectionRunnable.
func (r runnable) NeedLeaderElection() bool { return !r.o.EveryReplica }

// Start implements manager.Runnable.
func (r runnable) Start(ctx context.Context) error { return Run(ctx, r.c, r.o.ShutdownGrace) }

// Run starts c and keeps it running until ctx ends or, for a Failer, until c fails
// on its own; then it shuts c down within grace (a context of its own: ctx is done
// by then) and returns the failure joined with Shutdown's error. A failed Start is
// returned as it is, and nothing is shut down. It is the body of a manager's
// Runnable and of a command that serves until a signal.
func Run(ctx context.Context, c Component, grace time.Duration) error {
	if err := c.Start(ctx); err != nil {
		return err
	}
	var failed <-chan error // nil: never
	if f, ok := c.(Failer); ok {
		failed = f.Err()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	return errors.Join(err, c.Shutdown(sctx))
}
