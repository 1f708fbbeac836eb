package s3

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/kprof/kprof/internal/storage"
)

func TestPutWritesAnIndexMarkerAfterTheProfile(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, nil)
	meta := sampleMeta()
	key := storage.RenderKey(storage.DefaultKeyTemplate, "p", meta)
	if err := s.Put(testCtx(t), key, heapProfile(t), meta); err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := s.Walk(testCtx(t), "p/", func(page []Object) error {
		for _, o := range page {
			keys = append(keys, o.Key)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0] != key {
		t.Fatalf("listed %q, want the profile and its marker", keys)
	}
	gotKey, got, err := storage.ParseMarkerKey(keys[1])
	if err != nil {
		t.Fatal(err)
	}
	if gotKey != key || got.Service != meta.Service || got.Type != meta.Type || !got.CapturedAt.Equal(meta.CapturedAt) {
		t.Errorf("marker of %q carries %+v, want %+v", gotKey, got, meta)
	}
	head, size, err := s.Head(testCtx(t), key)
	if err != nil {
		t.Fatal(err)
	}
	if head.Service != meta.Service || head.Reason != meta.Reason || !head.CapturedAt.Equal(meta.CapturedAt) || size == 0 {
		t.Errorf("Head = %+v, %d; want the metadata Put stored", head, size)
	}
}

func TestAFailedMarkerIsLoggedAndThePutStillSucceeds(t *testing.T) {
	data := []byte("a profile")
	sum := sha256.Sum256(data)
	f := &fakeS3{markerPutError: "AccessDenied",
		head: func(h http.Header, _ *int) { h.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(sum[:])) }}
	s := newFakeStore(t, f, nil)
	var mu sync.Mutex
	var logs strings.Builder
	log := funcr.New(func(_, args string) { mu.Lock(); logs.WriteString(args + "\n"); mu.Unlock() }, funcr.Options{})
	ctx := logr.NewContext(testCtx(t), log)
	if err := s.Put(ctx, "k.pb.gz", data, storage.Meta{Type: "heap"}); err != nil {
		t.Fatalf("Put = %v, want nil: the profile is stored and verified", err)
	}
	f.mu.Lock()
	_, stored := f.objects["k.pb.gz"]
	f.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()
	if !stored || !strings.Contains(logs.String(), "write index marker") || !strings.Contains(logs.String(), "AccessDenied") {
		t.Errorf("profile stored %t; logs:\n%s\nwant the marker's failure logged", stored, logs.String())
	}
}
