package local

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// recordingTarget is an in-process pprof server that remembers the SHA-256 of every
// profile body it served with status 200.
type recordingTarget struct {
	URL string // pprof prefix
	mu  sync.Mutex
	sum []string
}

func startRecordingTarget(t *testing.T) *recordingTarget {
	t.Helper()
	rt := &recordingTarget{}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &bodyRecorder{ResponseWriter: w, status: http.StatusOK}
		mux.ServeHTTP(rec, r)
		name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
		if rec.status == http.StatusOK && name != "" && rec.body.Len() > 0 {
			sum := sha256.Sum256(rec.body.Bytes())
			rt.mu.Lock()
			rt.sum = append(rt.sum, hex.EncodeToString(sum[:]))
			rt.mu.Unlock()
		}
	}))
	t.Cleanup(srv.Close)
	rt.URL = srv.URL + "/debug/pprof"
	return rt
}

// served returns the SHA-256 of every profile served so far.
func (rt *recordingTarget) served() []string {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return slices.Clone(rt.sum)
}

type bodyRecorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (b *bodyRecorder) WriteHeader(code int) {
	b.status = code
	b.ResponseWriter.WriteHeader(code)
}

func (b *bodyRecorder) Write(p []byte) (int, error) {
	b.body.Write(p)
	return b.ResponseWriter.Write(p)
}

// servedBy is every profile the targets served, sorted.
func servedBy(targets ...*recordingTarget) []string {
	var all []string
	for _, rt := range targets {
		all = append(all, rt.served()...)
	}
	slices.Sort(all)
	return all
}

// bucketSums returns the SHA-256 of every profile object in bucket by key (index markers left out).
func bucketSums(ctx context.Context, m *testenv.MinIO, bucket string) (map[string]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := m.Client()
	out := map[string]string{}
	p := awss3.NewListObjectsV2Paginator(c, &awss3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if storage.IsMarkerKey(*o.Key) {
				continue // the empty index marker written next to each profile
			}
			obj, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				return nil, fmt.Errorf("get s3://%s/%s: %w", bucket, *o.Key, err)
			}
			h := sha256.New()
			_, err = io.Copy(h, io.LimitReader(obj.Body, 64<<20))
			obj.Body.Close()
			if err != nil {
				return nil, fmt.Errorf("read s3://%s/%s: %w", bucket, *o.Key, err)
			}
			out[*o.Key] = hex.EncodeToString(h.Sum(nil))
		}
	}
	return out, nil
}

// sortedValues returns the values of m, sorted: a multiset to compare.
func sortedValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.Sort(out)
	return out
}

// spoolEntries counts the committed entries (sidecars) in a spool directory, and
// returns every file name found there.
func spoolEntries(t *testing.T, dir string) (entries int, files []string) {
	t.Helper()
	des, err := os.ReadDir(dir)
	if errors.Is(err, iofs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		t.Fatalf("read spool %s: %v", dir, err)
	}
	for _, de := range des {
		files = append(files, de.Name())
		if strings.HasSuffix(de.Name(), ".json") {
			entries++
		}
	}
	return entries, files
}

// resultLog collects the engine's results.
type resultLog struct {
	mu      sync.Mutex
	ok      int
	failed  []string
	results []capture.Result
}

func (l *resultLog) record(r capture.Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, r)
	if r.Err != nil {
		l.failed = append(l.failed, fmt.Sprintf("%s %s at %s: %s: %v", r.Target.Name(), r.Type,
			r.Started.Format(time.RFC3339Nano), r.FailureReason, r.Err))
		return
	}
	l.ok++
}

func (l *resultLog) counts() (ok int, failed []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, slices.Clone(l.failed)
}

// runInBackground runs r until the returned stop is called (or the test ends) and
// returns Run's error from stop. done is closed if Run returns early.
func runInBackground(t *testing.T, r *Runner) (stop func() error, done <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	finished := make(chan struct{})
	var runErr error
	go func() { defer close(finished); runErr = r.Run(ctx) }()
	stop = func() error {
		cancel()
		<-finished
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return stop, finished
}

// waitFor polls cond until it holds; it fails the test when the deadline passes or
// the run ended first.
func waitFor(t *testing.T, what string, deadline time.Duration, runDone <-chan struct{}, cond func() (bool, string)) {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for {
		ok, state := cond()
		if ok {
			t.Logf("reached: %s (%s)", what, state)
			return
		}
		select {
		case <-runDone:
			t.Fatalf("the run ended while waiting for %s (%s)", what, state)
		case <-timeout.C:
			t.Fatalf("%s not reached within %s (%s)", what, deadline, state)
		case <-t.Context().Done():
			t.Fatalf("test ended while waiting for %s", what)
		case <-tick.C:
		}
	}
}
