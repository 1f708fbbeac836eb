package index

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/testenv"
)

const testBucket = "profiles"

// countingTransport counts the requests it sends by method.
type countingTransport struct {
	mu     sync.Mutex
	counts map[string]int
	inner  http.RoundTripper
}

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.counts[r.Method]++
	c.mu.Unlock()
	return c.inner.RoundTrip(r)
}

func (c *countingTransport) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.counts
	c.counts = map[string]int{}
	return out
}

// startMinIO starts MinIO with testBucket and puts its credentials where the AWS
// default chain finds them (the environment), with no shared config files.
func startMinIO(t *testing.T) *testenv.MinIO {
	t.Helper()
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, testBucket)
	m.UseAsDefaultCredentials(t)
	return m
}

// newS3Store is the operator's S3 store writing into testBucket.
func newS3Store(t *testing.T, m *testenv.MinIO) *s3.Store {
	t.Helper()
	st, err := s3.New(context.Background(), s3.Config{Bucket: testBucket, Endpoint: m.Endpoint, Region: m.Region,
		Credentials: &s3.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newS3Index(t *testing.T, m *testenv.MinIO, store string, maxHeads int) (Index, *countingTransport) {
	t.Helper()
	ct := &countingTransport{counts: map[string]int{}, inner: http.DefaultTransport.(*http.Transport).Clone()}
	x, err := New(context.Background(), Config{Store: store, S3Endpoint: m.Endpoint, MaxHeads: maxHeads,
		Timeout: 20 * time.Second, HTTPClient: &http.Client{Transport: ct}})
	if err != nil {
		t.Fatal(err)
	}
	return x, ct
}

func TestListS3ReadsIndexMarkersWithoutAHeadPerObject(t *testing.T) {
	m := startMinIO(t)
	data := heapProfile(t)
	keys := put(t, newS3Store(t, m), "prod", data, testMetas())
	// A profile under another prefix is not listed.
	put(t, newS3Store(t, m), "staging", data, testMetas()[:1])

	x, ct := newS3Index(t, m, "s3://"+testBucket+"/prod", 1000)
	es, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if n := ct.take(); n[http.MethodHead] != 0 || n[http.MethodGet] != 1 {
		t.Errorf("requests %v, want one GET (a ListObjectsV2 page) and no HEAD", n)
	}
	want := make([]string, len(keys))
	for i, k := range keys {
		want[i] = strings.TrimPrefix(k, "prod/")
	}
	if !slices.Equal(ids(es), want) {
		t.Fatalf("listed %q, want %q", ids(es), want)
	}
	e := es[0]
	if e.Source != "marker" || e.Namespace != "shop" || e.Service != "checkout" || e.Container != "app" || e.Type != "cpu" ||
		!e.CapturedAt.Equal(t0) || e.Duration != 30*time.Second || e.Trigger != TriggerSchedule || e.Size != int64(len(data)) ||
		e.Location != "s3://"+testBucket+"/"+keys[0] {
		t.Errorf("first entry %+v", e)
	}
	if e := es[2]; e.Trigger != TriggerThreshold || e.Reason != "threshold: cpu 93% of request >= 80%" || e.Node != testMetas()[2].Node ||
		e.Source != "marker" {
		t.Errorf("threshold entry: trigger %q reason %q", e.Trigger, e.Reason)
	}
	got, err := x.List(t.Context(), Filter{Service: "cart", Reason: "threshold"})
	if err != nil || !slices.Equal(ids(got), want[2:]) {
		t.Errorf("filtered list %q, %v; want %q", ids(got), err, want[2:])
	}
	b, err := x.Open(t.Context(), want[0], 0)
	if err != nil || string(b) != string(data) {
		t.Errorf("Open(%q) = %d bytes, %v; want the stored profile", want[0], len(b), err)
	}
}

func TestListS3ListsObjectsWrittenBeforeMarkersWithBoundedHeads(t *testing.T) {
	m := startMinIO(t)
	data := heapProfile(t)
	keys := put(t, newS3Store(t, m), "", data, testMetas())
	// Remove the markers: these are now objects as kprof wrote them before markers existed.
	c := m.Client()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	out, err := c.ListObjectsV2(ctx, &awss3.ListObjectsV2Input{Bucket: aws.String(testBucket)})
	if err != nil {
		t.Fatal(err)
	}
	removed := 0
	for _, o := range out.Contents {
		if storage.IsMarkerKey(*o.Key) {
			if _, err := c.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(testBucket), Key: o.Key}); err != nil {
				t.Fatal(err)
			}
			removed++
		}
	}
	if removed != len(keys) {
		t.Fatalf("removed %d markers, want %d", removed, len(keys))
	}

	t.Run("each is listed with its object metadata, one HEAD each", func(t *testing.T) {
		x, ct := newS3Index(t, m, "s3://"+testBucket, 1000)
		es, err := x.List(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if n := ct.take(); n[http.MethodHead] != len(keys) {
			t.Errorf("requests %v, want %d HEAD", n, len(keys))
		}
		if !slices.Equal(ids(es), keys) {
			t.Fatalf("listed %q, want %q", ids(es), keys)
		}
		e := es[2]
		if e.Source != "head" || e.Service != "cart" || e.Trigger != TriggerThreshold || e.Duration != 10*time.Second || e.Error != "" {
			t.Errorf("old entry %+v", e)
		}
	})
	t.Run("past MaxHeads they are listed with what their key says", func(t *testing.T) {
		x, ct := newS3Index(t, m, "s3://"+testBucket, 1)
		es, err := x.List(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if n := ct.take(); n[http.MethodHead] != 1 {
			t.Errorf("requests %v, want 1 HEAD", n)
		}
		if len(es) != 3 {
			t.Fatalf("listed %q, want 3", ids(es))
		}
		var past []Entry
		for _, e := range es {
			if e.Source == "key" {
				past = append(past, e)
			}
		}
		if len(past) != 2 {
			t.Fatalf("%d entries listed from their key, want 2: %+v", len(past), es)
		}
		for _, e := range past {
			if e.Service == "" || e.Pod == "" || e.Type == "" || e.CapturedAt.IsZero() || e.Reason != "" ||
				!strings.Contains(e.Error, "more than 1 objects without an index marker") {
				t.Errorf("entry past the bound %+v", e)
			}
		}
	})
}

func TestOpenS3RefusesHostileIDsAndBadObjects(t *testing.T) {
	m := startMinIO(t)
	c := m.Client()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for key, body := range map[string]string{"secret.pb.gz": string(heapProfile(t)), "p/zero.pb.gz": "", "p/bad.pb.gz": "garbage"} {
		if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key),
			Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(t, newS3Store(t, m), "p", heapProfile(t), testMetas()[:1])
	x, _ := newS3Index(t, m, "s3://"+testBucket+"/p", 10)
	es, err := x.List(t.Context(), Filter{Type: "cpu"})
	if err != nil || len(es) != 1 {
		t.Fatalf("list: %q, %v", ids(es), err)
	}
	if _, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String("p/100%25.pb.gz"),
		Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	all, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(all, func(e Entry) bool { return e.ID == "100%25.pb.gz" })
	if i < 0 || !strings.Contains(all[i].Error, "invalid profile ID") {
		t.Errorf("an object whose key Open refuses is listed as %+v, want it listed with the reason", all)
	}
	for _, tc := range []struct {
		id    string
		limit int64
		want  error
	}{
		{"../secret.pb.gz", 0, ErrBadID},
		{"%2e%2e/secret.pb.gz", 0, ErrBadID},
		{"/secret.pb.gz", 0, ErrBadID},
		{es[0].ID + storage.MarkerInfix + "v1/e30", 0, ErrBadID},
		{"missing.pb.gz", 0, ErrNotFound},
		{"zero.pb.gz", 0, ErrEmpty},
		{"bad.pb.gz", 0, ErrCorrupt},
		{es[0].ID, 10, ErrTooLarge},
	} {
		t.Run("id "+tc.id+" is refused", func(t *testing.T) {
			_, err := x.Open(t.Context(), tc.id, tc.limit)
			if !errors.Is(err, tc.want) {
				t.Errorf("Open(%q) = %v, want %v", tc.id, err, tc.want)
			}
		})
	}
}

func TestStatS3ListsOneKeyWithItsMarker(t *testing.T) {
	m := startMinIO(t)
	data := heapProfile(t)
	keys := put(t, newS3Store(t, m), "prod", data, testMetas())
	x, ct := newS3Index(t, m, "s3://"+testBucket+"/prod", 1000)
	all, err := x.List(t.Context(), Filter{})
	if err != nil {
		t.Fatal(err)
	}
	ct.take()
	for i, k := range keys {
		id := strings.TrimPrefix(k, "prod/")
		e, err := x.Stat(t.Context(), id)
		if err != nil {
			t.Fatalf("Stat(%q): %v", id, err)
		}
		if e != all[i] {
			t.Errorf("Stat(%q) = %+v, want the listed %+v", id, e, all[i])
		}
	}
	if n := ct.take(); n[http.MethodHead] != 0 || n[http.MethodGet] != len(keys) {
		t.Errorf("requests %v, want one GET (ListObjectsV2) per Stat and no HEAD", n)
	}
	// A key that is a prefix of another names no profile.
	prefixOfKey := strings.TrimSuffix(strings.TrimPrefix(keys[0], "prod/"), ".pb.gz")
	for id, want := range map[string]error{"../x.pb.gz": ErrBadID, "missing.pb.gz": ErrNotFound, prefixOfKey: ErrNotFound} {
		if _, err := x.Stat(t.Context(), id); !errors.Is(err, want) {
			t.Errorf("Stat(%q) = %v, want %v", id, err, want)
		}
	}
	t.Run("an object without a marker is described by one HEAD request", func(t *testing.T) {
		k := "prod/shop/legacy/2026-12-07/20261207T140000.000Z_legacy-0_heap.pb.gz"
		if _, err := m.Client().PutObject(t.Context(), &awss3.PutObjectInput{Bucket: aws.String(testBucket), Key: aws.String(k),
			Body: strings.NewReader(string(data))}); err != nil {
			t.Fatal(err)
		}
		ct.take()
		e, err := x.Stat(t.Context(), strings.TrimPrefix(k, "prod/"))
		if err != nil {
			t.Fatal(err)
		}
		if e.Service != "legacy" || e.Type != "heap" || e.Source != "key" {
			t.Errorf("Stat = %+v, want the key's metadata", e)
		}
		if n := ct.take(); n[http.MethodHead] != 1 {
			t.Errorf("requests %v, want one HEAD", n)
		}
	})
}
