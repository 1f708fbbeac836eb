package lifecycle

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// component records its lifecycle calls; failing makes it a Failer.
type component struct {
	startErr           error
	started, shutdowns atomic.Int32
	shutdownHadTime    atomic.Bool
}

func (c *component) Start(context.Context) error {
	c.started.Add(1)
	return c.startErr
}

func (c *component) Shutdown(ctx context.Context) error {
	c.shutdowns.Add(1)
	_, ok := ctx.Deadline()
	c.shutdownHadTime.Store(ok && ctx.Err() == nil)
	return nil
}

type failing struct {
	component
	err chan error
}

func (f *failing) Err() <-chan error { return f.err }

func TestRunnable(t *testing.T) {
	t.Run("leader-elected by default, on every replica when asked", func(t *testing.T) {
		if !Runnable(&component{}, RunnableOptions{}).(manager.LeaderElectionRunnable).NeedLeaderElection() {
			t.Error("the default runs on every replica")
		}
		if Runnable(&component{}, RunnableOptions{EveryReplica: true}).(manager.LeaderElectionRunnable).NeedLeaderElection() {
			t.Error("EveryReplica still needs leader election")
		}
	})
	t.Run("the manager's stop shuts the component down once, with the grace period as its deadline", func(t *testing.T) {
		c := &component{}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- Runnable(c, RunnableOptions{ShutdownGrace: time.Minute}).Start(ctx) }()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if c.started.Load() != 1 || c.shutdowns.Load() != 1 || !c.shutdownHadTime.Load() {
			t.Errorf("started %d, shut down %d (with time left: %v); want 1, 1, true", c.started.Load(), c.shutdowns.Load(), c.shutdownHadTime.Load())
		}
	})
	t.Run("a failed start is the runnable's error and nothing is shut down", func(t *testing.T) {
		boom := errors.New("listen: address in use")
		c := &component{startErr: boom}
		if err := Runnable(c, RunnableOptions{}).Start(context.Background()); !errors.Is(err, boom) {
			t.Fatalf("Start = %v, want %v", err, boom)
		}
		if c.shutdowns.Load() != 0 {
			t.Error("shut down a component that did not start")
		}
	})
	t.Run("a component that fails on its own stops the runnable with its error, shut down", func(t *testing.T) {
		boom := errors.New("serve: listener closed")
		f := &failing{err: make(chan error, 1)}
		f.err <- boom
		err := Runnable(f, RunnableOptions{ShutdownGrace: time.Minute}).Start(context.Background())
		if !errors.Is(err, boom) || f.shutdowns.Load() != 1 {
			t.Fatalf("Start = %v after %d shutdowns, want %v after 1", err, f.shutdowns.Load(), boom)
		}
	})
}
