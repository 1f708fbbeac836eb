package lifecycle

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

func TestWaitOrCancel(t *testing.T) {
	t.Run("no work returns at once without cancelling", func(t *testing.T) {
		var wg sync.WaitGroup
		if WaitOrCancel(context.Background(), &wg, func() { t.Error("cancel called") }) {
			t.Fatal("reported a cancel")
		}
	})
	t.Run("work that outlives the context is cancelled and waited for", func(t *testing.T) {
		var wg sync.WaitGroup
		stop := make(chan struct{})
		finished := false
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-stop
			finished = true
		}()
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if !WaitOrCancel(ctx, &wg, func() { close(stop) }) {
			t.Fatal("reported no cancel")
		}
		if !finished {
			t.Fatal("returned before the work finished")
		}
	})
	t.Run("work that finishes in time is not cancelled", func(t *testing.T) {
		var wg sync.WaitGroup
		release := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-release
		}()
		go close(release)
		if WaitOrCancel(context.Background(), &wg, func() { t.Error("cancel called") }) {
			t.Fatal("reported a cancel")
		}
	})
}

func TestDrain(t *testing.T) {
	t.Run("finished work is released once and no error returned", func(t *testing.T) {
		var wg sync.WaitGroup
		cancels := 0
		err := Drain(context.Background(), &wg, func() { t.Error("deadline called") }, func() { cancels++ }, "shut down x")
		if err != nil || cancels != 1 {
			t.Fatalf("err %v, cancel called %d times; want nil, 1", err, cancels)
		}
	})
	t.Run("work that outlives the context is announced, cancelled, waited for and named in the error", func(t *testing.T) {
		var wg sync.WaitGroup
		work, stopWork := context.WithCancel(context.Background())
		var finished atomic.Bool
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-work.Done()
			finished.Store(true)
		}()
		cause := errors.New("grace over")
		ctx, cancel := context.WithCancelCause(context.Background())
		cancel(cause)
		var calls []string
		err := Drain(ctx, &wg,
			func() { calls = append(calls, "deadline") },
			func() { calls = append(calls, "cancel"); stopWork() },
			"shut down x: work cancelled")
		if !errors.Is(err, cause) || err.Error() != "shut down x: work cancelled: grace over" {
			t.Fatalf("err = %v", err)
		}
		if !finished.Load() {
			t.Fatal("returned before the work finished")
		}
		if want := []string{"deadline", "cancel", "cancel"}; len(calls) != 3 || calls[0] != want[0] || calls[1] != want[1] || calls[2] != want[2] {
			t.Fatalf("calls %v, want %v", calls, want)
		}
	})
	t.Run("nil funcs are allowed", func(t *testing.T) {
		var wg sync.WaitGroup
		wg.Add(1)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		go wg.Done()
		err := Drain(ctx, &wg, nil, nil, "shut down x")
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v", err)
		}
	})
}
