package remote

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/storage/spool"
)

// unreachableStore is an S3 store whose endpoint refuses connections: a port that
// was just free.
func unreachableStore(t *testing.T, bucket string) *s3.Store {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	st, err := s3.New(context.Background(), s3.Config{Bucket: bucket, Region: "us-east-1", Endpoint: "http://" + addr,
		Credentials: &s3.Credentials{AccessKeyID: "id", SecretAccessKey: "key"}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newRemote(t *testing.T, st *s3.Store, onHealth func(error)) *Remote {
	t.Helper()
	r, err := New(Config{Store: st, Spool: spool.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)}, OnHealth: onHealth})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = r.Shutdown(ctx)
	})
	return r
}

func TestAFailedCheckIsTheHealthUntilTheStoreChanges(t *testing.T) {
	r := newRemote(t, unreachableStore(t, "profiles"), nil)
	if err := r.Health(); err != nil {
		t.Fatalf("health %v before any check, want nil", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := r.Check(ctx)
	if err == nil || storage.KindOf(err) != storage.KindEndpointUnreachable {
		t.Fatalf("check of an unreachable endpoint: %v, want EndpointUnreachable", err)
	}
	if !errors.Is(r.Health(), err) && r.Health().Error() != err.Error() {
		t.Errorf("health %v, want the check's error %v", r.Health(), err)
	}

	t.Run("the spool reporting the store healthy clears it", func(t *testing.T) {
		r.spoolHealth(nil)
		if err := r.Health(); err != nil {
			t.Errorf("health %v after the spool reported the store healthy", err)
		}
	})
	t.Run("new credentials clear it", func(t *testing.T) {
		r.mu.Lock()
		r.checkErr = err // as the failed check left it
		r.mu.Unlock()
		r.SetStore(unreachableStore(t, "profiles"))
		if err := r.Health(); err != nil {
			t.Errorf("health %v after the store changed", err)
		}
		if got := r.handle.String(); got == "" {
			t.Error("the spool's store has no name")
		}
	})
}

func TestCheckInBackgroundReportsItsResult(t *testing.T) {
	got := make(chan error, 1)
	r := newRemote(t, unreachableStore(t, "profiles"), func(err error) { got <- err })
	r.CheckInBackground(10 * time.Second)
	select {
	case err := <-got:
		if storage.KindOf(err) != storage.KindEndpointUnreachable {
			t.Errorf("OnHealth(%v), want the check's EndpointUnreachable", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("OnHealth was not called after the background check")
	}
	if r.Health() == nil {
		t.Error("health nil after a failed background check")
	}
}

func TestNewRequiresAStore(t *testing.T) {
	if _, err := New(Config{Spool: spool.Config{Dir: t.TempDir()}}); err == nil {
		t.Error("a remote without a store was created")
	}
}
