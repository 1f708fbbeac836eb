package usage

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

func TestLoopPublishesUntilShutdown(t *testing.T) {
	root := cgroupfsV2(t)
	writeTree(t, root, v2Files(ctrDir(uid1, cid1), 1_000_000, 1))
	readings := make(chan *profile.Metrics, 100)
	r := newReader(t, Config{Root: root, Interval: MinInterval, Publish: func(m *profile.Metrics) { readings <- m }})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("a second Start succeeded")
	}
	var got []*profile.Metrics
	for len(got) < 3 {
		got = append(got, <-readings)
	}
	for i, m := range got {
		if len(m.Points) != 2 {
			t.Errorf("reading %d has points %+v, want the container's two", i, m.Points)
		}
		if i > 0 && !m.Time.After(got[i-1].Time) {
			t.Errorf("reading %d at %s is not after reading %d at %s", i, m.Time, i-1, got[i-1].Time)
		}
		if start := m.Points[0].Start; !start.Equal(got[0].Time) {
			t.Errorf("reading %d: counter start %s, want the first reading's time %s", i, start, got[0].Time)
		}
	}
	// Generous: bounds a hang, asserts nothing about speed.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := r.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	published := len(readings)
	readOnce(t, r, time.Now()) // ReadOnce still works; it never publishes
	if n := len(readings); n != published {
		t.Errorf("%d readings published after Shutdown returned", n-published)
	}
	if err := r.Shutdown(ctx); err != nil {
		t.Errorf("a second Shutdown: %v", err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestShutdownWaitsForPublishUntilContextEnds(t *testing.T) {
	root := cgroupfsV2(t)
	entered, release := make(chan struct{}), make(chan struct{})
	r := newReader(t, Config{Root: root, Interval: MinInterval, Publish: func(*profile.Metrics) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-release
	}})
	if err := r.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-entered
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown with a Publish blocked and an ended context = %v, want context.Canceled", err)
	}
	close(release)
	if err := r.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown once Publish returned = %v", err)
	}
}

func TestShutdownWithoutStart(t *testing.T) {
	r := newReader(t, Config{Root: t.TempDir()})
	if err := r.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown without Start = %v", err)
	}
	if err := r.Start(context.Background()); err == nil {
		t.Error("Start after Shutdown succeeded")
	}
}

func TestStartWithEndedContext(t *testing.T) {
	r := newReader(t, Config{Root: t.TempDir()})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := r.Start(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Start with an ended context = %v, want context.Canceled", err)
	}
}
