package lifecycle

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestBackgroundRunsOnceAndStopWaitsForTheRunToReturn(t *testing.T) {
	var b Background
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("Stop without Go: %v", err)
	}
	started := make(chan struct{}, 2)
	returned := make(chan struct{})
	b.Go(func(ctx context.Context) {
		started <- struct{}{}
		<-ctx.Done()
		close(returned)
	})
	b.Go(func(context.Context) { started <- struct{}{} }) // ignored
	<-started
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	select {
	case <-returned:
	default:
		t.Fatal("Stop returned before the run did")
	}
	if len(started) != 0 {
		t.Error("a second Go started another run")
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestBackgroundStopGivesUpWhenItsContextEnds(t *testing.T) {
	var b Background
	release := make(chan struct{})
	defer close(release)
	b.Go(func(context.Context) { <-release }) // ignores its context
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := b.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Stop = %v, want the deadline", err)
	}
}
