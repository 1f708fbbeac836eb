package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
)

// The layout of the filled bucket. Changing what fill writes means changing
// layoutVersion, which names the cached data directory.
const (
	layoutVersion = "v1"
	keyPrefix     = "kprof"
	namespaces    = 4
	services      = 25 // per namespace
	podsPerSvc    = 3
	// spacing is the time between two captures: 100 000 profiles span about 10 days.
	spacing = 8640 * time.Millisecond
)

// firstCapture is when profile 0 was captured.
var firstCapture = time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)

// profileMeta is the metadata of profile i, as the operator's capture engine fills
// it in (podtarget's target metadata, then type, reason, captured-at and duration):
// schedule captures of cpu, heap and goroutine profiles, every 20th a threshold
// capture, every 97th a manual one.
func profileMeta(i int) storage.Meta {
	ns := fmt.Sprintf("shop-%d", i%namespaces)
	svc := fmt.Sprintf("svc-%02d", (i/namespaces)%services)
	pod := fmt.Sprintf("%s-7d9f8c6b5-%05x", svc, (i/(namespaces*services))%podsPerSvc*4099)
	m := storage.Meta{
		Namespace: ns, Pod: pod, Service: svc, Container: "app",
		Node:   fmt.Sprintf("node-%02d", i%20),
		Target: ns + "/" + pod, Config: ns + "/profile-all",
		Reason: "schedule", CapturedAt: firstCapture.Add(time.Duration(i) * spacing),
		Labels: map[string]string{"app": svc, "pod-template-hash": "7d9f8c6b5"},
	}
	switch i % 3 {
	case 0:
		m.Type, m.Duration = "cpu", 10*time.Second
	case 1:
		m.Type = "heap"
	default:
		m.Type = "goroutine"
	}
	switch {
	case i%97 == 0:
		m.Reason = "manual"
	case i%20 == 0:
		m.Reason = "threshold: cpu 93% of request ≥ 80%"
	}
	return m
}

// profileKey is where the operator stores profile i: the default key template.
func profileKey(i int) string {
	return storage.RenderKey(storage.DefaultKeyTemplate, keyPrefix, profileMeta(i))
}

// tinyProfile is a real, small gzipped pprof profile (one sample), the body of
// every object: listing never reads bodies, so their size does not matter.
func tinyProfile() ([]byte, error) {
	fn := &profile.Function{ID: 1, Name: "main.work", SystemName: "main.work", Filename: "main.go"}
	loc := &profile.Location{ID: 1, Address: 0x1000, Line: []profile.Line{{Function: fn, Line: 42}}}
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "inuse_space", Unit: "bytes"}},
		Sample:     []*profile.Sample{{Location: []*profile.Location{loc}, Value: []int64{4096}}},
		Location:   []*profile.Location{loc},
		Function:   []*profile.Function{fn},
		TimeNanos:  firstCapture.UnixNano(),
	}
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fill makes the bucket hold profiles 0..n-1 under keyPrefix, each written by the
// S3 store's Put (the object with its user metadata, the HEAD that verifies it,
// the index marker), concurrency at a time. Profiles that already have a marker
// are skipped, so an interrupted fill resumes. It fails when the prefix holds
// anything else.
func fill(ctx context.Context, st *s3.Store, client *awss3.Client, bucket string, n, concurrency int, progress io.Writer) error {
	if _, err := client.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		if _, herr := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(bucket)}); herr != nil {
			return fmt.Errorf("create bucket %s: %w", bucket, err)
		}
	}
	done, err := storedProfiles(ctx, st)
	if err != nil {
		return err
	}
	todo, err := profilesToWrite(done, bucket, n)
	if err != nil {
		return err
	}
	if len(todo) == 0 {
		fmt.Fprintf(progress, "bucket %s already holds the %d profiles\n", bucket, n)
		return nil
	}
	body, err := tinyProfile()
	if err != nil {
		return err
	}
	fmt.Fprintf(progress, "writing %d of %d profiles (%d already there), %d at a time\n", len(todo), n, n-len(todo), concurrency)
	start := time.Now()
	var written atomic.Int64
	defer reportProgress(progress, &written, len(todo), start)()

	if err := putAll(ctx, st, body, todo, concurrency, &written); err != nil {
		return fmt.Errorf("fill bucket %s: %w", bucket, err)
	}
	// Put does not fail when only the marker could not be written: check them all.
	done, err = storedProfiles(ctx, st)
	if err != nil {
		return err
	}
	if complete := countTrue(done); complete != n || len(done) != n {
		return fmt.Errorf("fill bucket %s: %d profiles, %d with an index marker after writing, want %d", bucket, len(done), complete, n)
	}
	fmt.Fprintf(progress, "wrote %d profiles in %s\n", len(todo), time.Since(start).Round(time.Second))
	return nil
}

// profilesToWrite lists the profiles of 0..n-1 that done (what storedProfiles
// found) lacks; a profile in done that is not one of them is an error.
func profilesToWrite(done map[string]bool, bucket string, n int) ([]int, error) {
	want := make(map[string]bool, n)
	var todo []int
	for i := range n {
		k := profileKey(i)
		want[k] = true
		if !done[k] {
			todo = append(todo, i)
		}
	}
	for k := range done {
		if !want[k] {
			return nil, fmt.Errorf("bucket %s holds profile %s, which is not one of the %d this benchmark writes (use a new -data directory)", bucket, k, n)
		}
	}
	return todo, nil
}

// reportProgress prints every 15 s how many of total profiles are written, until
// the function it returns is called.
func reportProgress(progress io.Writer, written *atomic.Int64, total int, start time.Time) (stop func()) {
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Go(func() {
		t := time.NewTicker(15 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				w := written.Load()
				rate := float64(w) / time.Since(start).Seconds()
				fmt.Fprintf(progress, "  %d/%d written, %.0f/s, about %s left\n", w, total, rate,
					(time.Duration(float64(int64(total)-w)/rate) * time.Second).Round(time.Second))
			}
		}
	})
	return func() { close(stopProgress); progressDone.Wait() }
}

// putAll puts body as each profile of todo, concurrency at a time, counting them
// in written; the first error stops the others.
func putAll(ctx context.Context, st *s3.Store, body []byte, todo []int, concurrency int, written *atomic.Int64) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan int)
	errs := make([]error, concurrency)
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for i := range work {
				if err := st.Put(ctx, profileKey(i), body, profileMeta(i)); err != nil {
					errs[w] = err
					cancel()
					return
				}
				written.Add(1)
			}
		})
	}
	for _, i := range todo {
		select {
		case work <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	return errors.Join(errs...)
}

// storedProfiles lists keyPrefix and returns the key of every object that is not a
// marker, true when its index marker is there too.
func storedProfiles(ctx context.Context, st *s3.Store) (map[string]bool, error) {
	objects, markers := map[string]bool{}, map[string]bool{}
	err := st.Walk(ctx, keyPrefix+"/", func(page []s3.Object) error {
		for _, o := range page {
			if !storage.IsMarkerKey(o.Key) {
				objects[o.Key] = true
				continue
			}
			k, _, err := storage.ParseMarkerKey(o.Key)
			if err != nil {
				return err
			}
			markers[k] = true
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list what the bucket holds: %w", err)
	}
	done := map[string]bool{}
	for k := range objects {
		done[k] = markers[k] // an object without its marker is written again
	}
	return done, nil
}

func countTrue(m map[string]bool) int {
	n := 0
	for _, v := range m {
		if v {
			n++
		}
	}
	return n
}
