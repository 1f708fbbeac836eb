package spool

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

func TestShutdown(t *testing.T) {
	t.Run("Shutdown without Start returns nil, twice, even with a done ctx", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		put(t, s, "k", profile(1, 10))
		done, cancel := context.WithCancel(context.Background())
		cancel()
		for i := range 2 {
			if err := s.Shutdown(done); err != nil {
				t.Fatalf("Shutdown #%d: %v", i+1, err)
			}
		}
		if n, _ := s.Pending(); n != 1 {
			t.Errorf("Pending() = %d after Shutdown, want the entry kept", n)
		}
	})

	t.Run("Shutdown while an upload hangs returns at its deadline and keeps the entry", func(t *testing.T) {
		remote := newFakeRemote("bucket")
		remote.setHang(true, false)
		remote.started = make(chan string, 1)
		s := newSpool(t, Config{Remote: remote})
		put(t, s, "hang/k", profile(1, 10))
		start(t, s)
		<-remote.started

		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		err := s.Shutdown(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "cancelled") {
			t.Fatalf("Shutdown = %v, want an error saying uploads were cancelled at the deadline", err)
		}
		if n, _ := s.Pending(); n != 1 {
			t.Errorf("Pending() = %d, want the cancelled entry kept", n)
		}
		if ids := entryIDs(t, s.cfg.Dir); ids["hang/k"] == "" {
			t.Errorf("the cancelled entry's files are gone: %v", spoolFiles(t, s.cfg.Dir))
		}
		if err := s.Shutdown(ctx); err != nil { // ctx is done: nothing is left to cancel
			t.Errorf("second Shutdown = %v, want nil", err)
		}
		if err := s.Health(); err != nil {
			t.Errorf("Health() = %v: a cancelled upload says nothing about the remote", err)
		}
	})

	t.Run("Start after Shutdown is refused", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "shut down") {
			t.Errorf("Start after Shutdown = %v, want an error", err)
		}
	})

	t.Run("Start twice is refused", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		start(t, s)
		if err := s.Start(context.Background()); err == nil || !strings.Contains(err.Error(), "already started") {
			t.Errorf("second Start = %v, want an error", err)
		}
	})

	t.Run("Start with a cancelled ctx is refused", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := s.Start(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("Start = %v, want context.Canceled", err)
		}
	})
}

func TestFlush(t *testing.T) {
	t.Run("Flush of an empty spool returns at once, even before Start", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		if err := s.Flush(context.Background()); err != nil {
			t.Errorf("Flush = %v", err)
		}
	})

	t.Run("Flush of a spool that is not running fails naming what remains", func(t *testing.T) {
		s := newSpool(t, Config{Remote: newFakeRemote("bucket")})
		put(t, s, "k", profile(1, 10))
		err := s.Flush(context.Background())
		if err == nil || !strings.Contains(err.Error(), "1 entries (10 bytes) remain") {
			t.Errorf("Flush = %v, want an error naming 1 entry of 10 bytes", err)
		}
	})

	t.Run("Flush fails when its ctx is done first, naming what remains", func(t *testing.T) {
		remote := newFakeRemote("bucket")
		remote.setFail(failFirst(1<<30, storage.KindNoSuchBucket))
		s := newSpool(t, Config{Remote: remote})
		put(t, s, "a", profile(1, 10))
		put(t, s, "b", profile(2, 20))
		start(t, s)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		err := s.Flush(ctx)
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "2 entries (30 bytes) remain") {
			t.Errorf("Flush = %v, want a deadline error naming 2 entries of 30 bytes", err)
		}
	})
}
