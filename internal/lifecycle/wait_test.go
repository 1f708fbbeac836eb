package lifecycle

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

func TestWait(t *testing.T) {
	t.Run("a wait that runs its course reports it", func(t *testing.T) {
		if !Wait(context.Background(), time.Nanosecond) {
			t.Error("Wait = false, want true")
		}
	})
	t.Run("a wait whose context ends first reports it", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if Wait(ctx, time.Hour) {
			t.Error("Wait = true, want false")
		}
	})
}

func TestEveryCallsUntilTheContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var calls atomic.Int32
	returned := make(chan struct{})
	go func() {
		defer close(returned)
		Every(ctx, time.Millisecond, func(got context.Context) {
			if got != ctx {
				t.Error("fn got another context than Every's")
			}
			calls.Add(1)
		})
	}()
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls after 10s, want 3", calls.Load())
		}
		time.Sleep(time.Millisecond) // polling the count, not waiting for it
	}
	cancel()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("Every did not return after its context ended")
	}
}
