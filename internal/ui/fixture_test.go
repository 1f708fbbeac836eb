package ui_test

import (
	"bufio"
	"bytes"
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

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kprof/kprof/internal/index"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/fs"
	"github.com/kprof/kprof/internal/storage/s3"
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

// realProfiles are CPU and heap profiles of the running sample app, captured once
// per test binary.
var realProfiles struct {
	sync.Mutex
	base, cpu, heap []byte
}

// sampleAppProfiles captures, as kprof's capture does (GET /debug/pprof/profile and
// /debug/pprof/heap), a 2 s CPU profile of the sample app's background load alone
// (base: what a scheduled capture records), a 2 s CPU profile during a /load spike
// (cpu: what a threshold capture records; the background load and the spike both burn
// in burnCPU) and a heap profile.
func sampleAppProfiles(t *testing.T) (base, cpu, heap []byte) {
	t.Helper()
	realProfiles.Lock()
	defer realProfiles.Unlock()
	if realProfiles.cpu != nil {
		return realProfiles.base, realProfiles.cpu, realProfiles.heap
	}
	port := testenv.StartSampleApp(t, "127.0.0.1:0", "--background-load")
	appURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	get := func(path string) []byte {
		ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, appURL+path, nil)
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
	base = get("/debug/pprof/profile?seconds=2")
	baseRate, err := testenv.CPURate(base, ".burnCPU")
	if err != nil {
		t.Fatal(err)
	}
	// The spike: /load burns on two workers (until the request ends) while 2 s CPU
	// profiles are captured until one shows burnCPU at twice the baseline's rate: on a
	// loaded machine a capture can get too little CPU to record a spike.
	ctx, stop := context.WithTimeout(t.Context(), 5*time.Minute)
	defer stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, appURL+"/load?cpu=5m&workers=2", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /load: %v", err)
	}
	defer resp.Body.Close()
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("GET /load: %s, first line %q, err %v", resp.Status, line, err)
	}
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		cpu = get("/debug/pprof/profile?seconds=2")
		r, err := testenv.CPURate(cpu, ".burnCPU")
		if err != nil {
			t.Fatal(err)
		}
		return r > 0 && r >= 2*baseRate, fmt.Sprintf("the capture during /load spends %.0f ms/s in burnCPU, the baseline %.0f ms/s: no spike yet", r*1e3, baseRate*1e3)
	})
	stop()
	heap = get("/debug/pprof/heap")
	realProfiles.base, realProfiles.cpu, realProfiles.heap = base, cpu, heap
	return base, cpu, heap
}

// fixture is a store with real profiles, hostile names and broken files, in a
// directory or in MinIO.
type fixture struct {
	index func(t *testing.T) index.Index
	total int
	ids   []string
}

// backend is where a fixture stores: put writes a profile as kprof does, raw writes
// bytes under a key without metadata (a crash or a hand copy).
type backend struct {
	store storage.Store
	raw   func(t *testing.T, key string, data []byte)
	index func(t *testing.T) index.Index
}

// dirBackend is a local directory, as kprof run and the operator's localStorage write it.
func dirBackend(t *testing.T) backend {
	dir := t.TempDir()
	st, err := fs.New(fs.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	return backend{
		store: st,
		raw: func(t *testing.T, key string, data []byte) {
			p := filepath.Join(dir, filepath.FromSlash(key))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		index: func(t *testing.T) index.Index {
			x, err := index.New(t.Context(), index.Config{Store: dir})
			if err != nil {
				t.Fatal(err)
			}
			return x
		},
	}
}

// minioBackend is a MinIO bucket written by the operator's S3 store (objects and
// their index markers). The credentials are where the AWS default chain finds them.
func minioBackend(t *testing.T) backend {
	const bucket = "profiles"
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, bucket)
	m.UseAsDefaultCredentials(t)
	st, err := s3.New(t.Context(), s3.Config{Bucket: bucket, Endpoint: m.Endpoint, Region: m.Region,
		Credentials: &s3.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	return backend{
		store: st,
		raw: func(t *testing.T, key string, data []byte) {
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := m.Client().PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(data)}); err != nil {
				t.Fatalf("put object %s: %v", key, err)
			}
		},
		index: func(t *testing.T) index.Index {
			x, err := index.New(t.Context(), index.Config{Store: "s3://" + bucket, S3Endpoint: m.Endpoint, S3Region: m.Region})
			if err != nil {
				t.Fatal(err)
			}
			return x
		},
	}
}

func newFixture(t *testing.T, be backend) *fixture {
	t.Helper()
	base, cpu, heap := sampleAppProfiles(t)
	f := &fixture{index: be.index}
	now := time.Now().UTC()
	put := func(key string, data []byte, m storage.Meta) {
		if key == "" {
			key = storage.RenderKey(storage.DefaultKeyTemplate, "", m)
		}
		if err := be.store.Put(t.Context(), key, data, m); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		f.ids = append(f.ids, key)
	}
	// checkout's spike (a threshold capture during /load) and, 30 minutes before it, a
	// scheduled capture of another replica: the spike's default base.
	put("", base, storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-5c4", Type: "cpu", Duration: 2 * time.Second,
		Reason: "schedule", CapturedAt: now.Add(-40 * time.Minute)})
	put("", cpu, storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "cpu", Duration: 2 * time.Second,
		Reason: "threshold: cpu 93% of request >= 80%", CapturedAt: now.Add(-10 * time.Minute)})
	put("", heap, storage.Meta{Namespace: "shop", Service: "checkout", Pod: "checkout-7d9", Type: "heap", Reason: "schedule", CapturedAt: now.Add(-20 * time.Minute)})
	put("", cpu, storage.Meta{Namespace: "shop", Service: "payments", Pod: "payments-5f2", Type: "cpu", Duration: 2 * time.Second, Reason: "schedule", CapturedAt: now.Add(-15 * time.Minute)})
	put("", heap, storage.Meta{Namespace: "shop", Service: evilService, Pod: evilPod, Type: "heap", Reason: "manual", CapturedAt: now.Add(-5 * time.Minute),
		Labels: map[string]string{"app": `"><b>label</b>`}})
	put(evilKey, heap, storage.Meta{Namespace: "shop", Service: "evil-key", Pod: "p", Type: "heap", Reason: "schedule", CapturedAt: now.Add(-4 * time.Minute)})
	for _, b := range []struct {
		name string
		data []byte
	}{
		{"empty.pb.gz", nil},
		{"corrupt.pb.gz", []byte("this is not a pprof profile")},
		{"huge.pb.gz", make([]byte, testMaxProfileBytes+1)},
	} {
		be.raw(t, "broken/"+b.name, b.data)
		f.ids = append(f.ids, "broken/"+b.name)
	}
	f.total = len(f.ids)
	return f
}

// handler is the UI over the fixture's store.
func (f *fixture) handler(t *testing.T) http.Handler {
	t.Helper()
	h, err := ui.New(ui.Config{Index: f.index(t), MaxProfileBytes: testMaxProfileBytes, LocalFiles: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// link is the flame graph path of the one profile whose ID contains part.
func (f *fixture) link(t *testing.T, part string) string {
	t.Helper()
	return ui.ProfileURL(f.id(t, part))
}

// id is the ID of the one profile whose ID contains part.
func (f *fixture) id(t *testing.T, part string) string {
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
	return found[0]
}
