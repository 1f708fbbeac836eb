package spool

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

func TestEntriesAreReplayedAfterRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	down := newFakeRemote("bucket")
	down.setFail(failFirst(1<<30, storage.KindEndpointUnreachable))
	first := newSpool(t, Config{Dir: dir, Remote: down})
	start(t, first)

	ks := keys("replay", 6)
	want := map[string][]byte{}
	for i, k := range ks[:5] {
		want[k] = profile(i, 200+i)
		put(t, first, k, want[k])
	}
	waitFor(t, "the remote to refuse an upload", func() bool { return first.Health() != nil })
	if err := first.Shutdown(context.Background()); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	// A Put after Shutdown is still captured, for the next spool on Dir.
	want[ks[5]] = profile(5, 300)
	put(t, first, ks[5], want[ks[5]])

	up := newFakeRemote("bucket")
	rec := newRecorder()
	cfg := Config{Dir: dir, Remote: up}
	rec.hook(&cfg)
	second := newSpool(t, cfg)
	if n, _ := second.Pending(); n != len(want) {
		t.Fatalf("the restarted spool has %d entries before Start, want %d", n, len(want))
	}
	start(t, second)
	flush(t, second)

	up.checkDelivered(t, want)
	rec.checkUploaded(t, ks)
	if ev := rec.evictions(); len(ev) != 0 {
		t.Errorf("evictions = %v, want none", ev)
	}
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("spool directory still holds %v", files)
	}
}

// A crash, or a lost response, between the remote's success and the local
// delete leaves the entry spooled. The next spool uploads it again under the
// same key, which overwrites the object: the bucket still holds one object per
// key, with the same bytes.
func TestAnUploadWhoseAcknowledgementWasLostIsRepeatedUnderTheSameKey(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "spool")
	remote := newFakeRemote("bucket")
	remote.setHang(true, true) // store the object, then never answer
	remote.started = make(chan string, 1)
	first := newSpool(t, Config{Dir: dir, Remote: remote})
	data := profile(9, 1234)
	put(t, first, "lost/ack.pb.gz", data)
	put(t, first, "lost/other.pb.gz", profile(10, 10))
	start(t, first)
	<-remote.started

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := first.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown with a hanging upload = %v, want a deadline error", err)
	}
	if ids := entryIDs(t, dir); len(ids) != 2 {
		t.Fatalf("after the lost acknowledgement the spool holds %v, want both entries", ids)
	}

	remote.setHang(false, false)
	second := newSpool(t, Config{Dir: dir, Remote: remote})
	start(t, second)
	flush(t, second)

	remote.mu.Lock()
	defer remote.mu.Unlock()
	if len(remote.objects) != 2 || string(remote.objects["lost/ack.pb.gz"].data) != string(data) {
		t.Errorf("remote holds %d objects, want 2 with the spooled bytes", len(remote.objects))
	}
	if n := remote.stores["lost/ack.pb.gz"]; n != 2 {
		t.Errorf("the object was written %d times, want 2 (once before the crash, once on replay)", n)
	}
	if n := remote.okPuts["lost/ack.pb.gz"]; n != 1 {
		t.Errorf("the remote confirmed %d uploads, want 1", n)
	}
}
