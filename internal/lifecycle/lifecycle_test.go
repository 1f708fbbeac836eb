package lifecycle

import (
	"context"
	"sync"
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
