package ui_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/testenv"
	"github.com/kprof/kprof/internal/ui"
)

// Hostile names a pod or its labels can carry.
const (
	evilService = `<script>alert(1)</script>`
	evilPod     = `pod"with'quotes`
	evilKey     = `shop/evil-key/"><img src=x onerror=alert(1)>.pb.gz`
)

// testMaxProfileBytes is the UI's profile size limit in these tests; huge.pb.gz is over it.
const testMaxProfileBytes = 1 << 20

// realProfiles are a CPU and a heap profile of the running sample app, captured once
// per test binary.
var realProfiles struct {
	sync.Mutex
	cpu, heap []byte
}

// sampleAppProfiles captures a 2 s CPU profile of the sample app (its background load
// and a /load burn, both in burnCPU) and a heap profile, as kprof's capture does: GET
// /debug/pprof/profile and /debug/pprof/heap.
func sampleAppProfiles(t *testing.T) (cpu, heap []byte) {
	t.Helper()
	realProfiles.Lock()
	defer realProfiles.Unlock()
	if realProfiles.cpu != nil {
		return realProfiles.cpu, realProfiles.heap
	}
	port := testenv.StartSampleApp(t, "127.0.0.1:0", "--background-load")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) []byte {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: status %d, %v: %s", path, resp.StatusCode, err, b)
		}
		return b
	}
	var wg sync.WaitGroup
	wg.Go(func() { get("/load?cpu=1500ms") })
	cpu = get("/debug/pprof/profile?seconds=2")
	wg.Wait()
	heap = get("/debug/pprof/heap")
	realProfiles.cpu, realProfiles.heap = cpu, heap
	return cpu, heap
}

// fixture is a store directory with real profiles, hostile names and broken files.
type fixture struct {
	dir   string
	total int
	ids   []string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	cpu, heap := sampleAppProfiles(t)
	f := &fixture{dir: t.TempDir()}
	st, err := fs.New(fs.Config{Dir: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	put := func(key string, data []byte, m storage.Meta) {
		if key == "" {
			key = storage.RenderKey(storage.DefaultKeyTemplate, "", m)
		}
		if err := st.Put(t.Context(), key, data, m); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		f.ids = append(f.ids, key)
	}
	put("", cpu, storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "cpu", Duration: 2 * time.Second,
		Reason: "threshold: cpu 93% of request >= 80%", CapturedAt: now.Add(-10 * time.Minute)})
	put("", heap, storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "heap", Reason: "schedule", CapturedAt: now.Add(-20 * time.Minute)})
	put("", cpu, storage.Meta{Namespace: "shop", Service: "payments", Pod: "payments-5f2", Type: "cpu", Duration: 2 * time.Second, Reason: "schedule", CapturedAt: now.Add(-15 * time.Minute)})
	put("", heap, storage.Meta{Namespace: "shop", Service: evilService, Pod: evilPod, Type: "heap", Reason: "manual", CapturedAt: now.Add(-5 * time.Minute),
		Labels: map[string]string{"app": `"><b>label</b>`}})
	put(evilKey, heap, storage.Meta{Namespace: "shop", Service: "evil-key", Pod: "p", Type: "heap", Reason: "schedule", CapturedAt: now.Add(-4 * time.Minute)})
	// Broken files, as a crash or a hand copy leaves them: no sidecar.
	for name, data := range map[string][]byte{
		"empty.pb.gz":   nil,
		"corrupt.pb.gz": []byte("this is not a pprof profile"),
		"huge.pb.gz":    make([]byte, testMaxProfileBytes+1),
	} {
		p := filepath.Join(f.dir, "broken", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		f.ids = append(f.ids, "broken/"+name)
	}
	f.total = len(f.ids)
	return f
}

// handler is the UI over the fixture's directory.
func (f *fixture) handler(t *testing.T) http.Handler {
	t.Helper()
	x, err := index.New(t.Context(), index.Config{Store: f.dir})
	if err != nil {
		t.Fatal(err)
	}
	h, err := ui.New(ui.Config{Index: x, MaxProfileBytes: testMaxProfileBytes, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// link is the flame graph path of the one profile whose ID contains part.
func (f *fixture) link(t *testing.T, part string) string {
	t.Helper()
	var found []string
	for _, id := range f.ids {
		if strings.Contains(id, part) {
			found = append(found, id)
		}
	}
	if len(found) != 1 {
		t.Fatalf("fixture: %d profile IDs contain %q: %q", len(found), part, found)
	}
	return ui.ProfileURL(found[0])
}
