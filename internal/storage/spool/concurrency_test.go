package spool

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/kprof/kprof/internal/storage"
)

func TestConcurrentPutsWithAFlakyRemote(t *testing.T) {
	const puts, writers = 200, 8
	remote := newFakeRemote("bucket")
	rng := rand.New(rand.NewPCG(1, 2))
	kinds := []storage.ErrorKind{storage.KindEndpointUnreachable, storage.KindStoreError, storage.KindVerifyFailed}
	// fail runs under the remote's mutex, so the seeded RNG is not shared unsafely.
	remote.setFail(func(int, string, []byte) error {
		if rng.Float64() < 0.3 {
			return outage(kinds[rng.IntN(len(kinds))])
		}
		return nil
	})
	rec := newRecorder()
	cfg := Config{Remote: remote, Workers: 4}
	rec.hook(&cfg)
	s := newSpool(t, cfg)
	start(t, s)

	want := map[string][]byte{}
	var ks []string
	for i := range puts {
		k := fmt.Sprintf("ns/svc/%03d_cpu.pb.gz", i)
		ks = append(ks, k)
		want[k] = profile(i, 64+i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, puts)
	for w := range writers {
		wg.Go(func() {
			for i := w; i < puts; i += writers {
				if err := s.Put(context.Background(), ks[i], want[ks[i]], testMeta(ks[i])); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Put: %v", err)
	}
	flush(t, s)

	remote.checkDelivered(t, want)
	rec.checkUploaded(t, ks)
	if evs := rec.evictions(); len(evs) != 0 {
		t.Errorf("evictions = %v, want none", evs)
	}
	if calls, _ := remote.snapshot(); calls <= puts {
		t.Errorf("the remote saw %d calls for %d profiles: the flaky remote never failed", calls, puts)
	}
}

// Entries of one key are uploaded one at a time, oldest first, so the newest
// Put of a key is what the remote keeps even when the older one needed retries.
func TestTheNewestPutOfAKeyWins(t *testing.T) {
	remote := newFakeRemote("bucket")
	older, newer := profile(1, 100), profile(2, 100)
	failedOnce := false
	remote.setFail(func(_ int, _ string, data []byte) error {
		if bytes.Equal(data, older) && !failedOnce {
			failedOnce = true
			return outage(storage.KindStoreError)
		}
		return nil
	})
	s := newSpool(t, Config{Remote: remote, Workers: 4})
	put(t, s, "same/key", older)
	put(t, s, "same/key", newer)
	start(t, s)
	flush(t, s)

	remote.mu.Lock()
	defer remote.mu.Unlock()
	if !failedOnce {
		t.Fatal("the older profile never failed; the test did not exercise a retry")
	}
	if got := remote.objects["same/key"].data; !bytes.Equal(got, newer) {
		t.Errorf("remote keeps the older profile of same/key, want the newer one")
	}
	if n := remote.okPuts["same/key"]; n != 2 {
		t.Errorf("remote confirmed %d uploads of same/key, want 2", n)
	}
	if len(remote.overlaps) > 0 {
		t.Errorf("same/key was uploaded twice at once")
	}
}
