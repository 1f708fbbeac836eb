package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/testenv"
)

// oneStackSampler hands out one sample with a user stack per Drain.
type oneStackSampler struct {
	closed atomic.Bool
}

func (s *oneStackSampler) Drain() ([]bpf.RawSample, bpf.Stats, error) {
	if s.closed.Load() {
		return nil, bpf.Stats{}, bpf.ErrClosed
	}
	return []bpf.RawSample{{TGID: 42, PID: 42, User: []uint64{0x401000}, Count: 1}}, bpf.Stats{}, nil
}

func (s *oneStackSampler) Close() error {
	s.closed.Store(true)
	return nil
}

// stuckSymbolizer blocks in User until released, as the symbolizer does while
// it parses a large binary's symbol table.
type stuckSymbolizer struct {
	entered atomic.Int32
	release chan struct{}
}

func (s *stuckSymbolizer) Observe(int32) error { return nil }
func (s *stuckSymbolizer) Kernel(a []uint64) []profile.Frame {
	return make([]profile.Frame, len(a))
}

func (s *stuckSymbolizer) User(_ int32, a []uint64) []profile.Frame {
	s.entered.Add(1)
	<-s.release
	return make([]profile.Frame, len(a))
}

// A collector whose loop is stuck symbolizing returns from Shutdown when its
// context ends, saying so, instead of waiting for the symbolizer; it
// publishes nothing after Shutdown returned, and releases its sampler once
// the loop is done.
func TestShutdownHonoursItsDeadlineWhileTheLoopIsSymbolizing(t *testing.T) {
	sym := &stuckSymbolizer{release: make(chan struct{})}
	var released sync.Once
	release := func() { released.Do(func() { close(sym.release) }) }
	t.Cleanup(release)
	smp := &oneStackSampler{}
	var returned atomic.Bool
	var lateEvents atomic.Int32
	c := newCollector(Config{
		Collection: collection.CollectionConfig{Name: "cpu", Version: 1, Event: "cpu-clock", Frequency: 99, Interval: time.Second},
		Symbolizer: sym,
		Publish: func(*profile.Event) {
			if returned.Load() {
				lateEvents.Add(1)
			}
		},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}, smp)
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		return sym.entered.Load() > 0, "the loop has not started symbolizing an interval"
	})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	errc := make(chan error, 1)
	go func() {
		err := c.Shutdown(ctx)
		returned.Store(true)
		errc <- err
	}()
	var err error
	select {
	case err = <-errc:
	case <-time.After(10 * time.Second):
		release()
		t.Fatalf("Shutdown with a 200ms deadline had not returned after 10s: it waits for the stuck symbolizer")
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "collector loop") {
		t.Errorf("Shutdown = %v, want the deadline named as the wait for the collector loop", err)
	}

	release()
	testenv.Eventually(t, 10*time.Second, func() (bool, string) {
		return smp.closed.Load(), "the sampler is still open after the loop finished"
	})
	if n := lateEvents.Load(); n != 0 {
		t.Errorf("%d events published after Shutdown returned", n)
	}
	if err2 := c.Shutdown(context.Background()); fmt.Sprint(err2) != fmt.Sprint(err) {
		t.Errorf("a second Shutdown = %v, want the first's %v", err2, err)
	}
}
