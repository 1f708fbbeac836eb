package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kprof/kprof/examples/sample-app/app"
	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/storage/s3"
	"github.com/kprof/kprof/internal/storage/spool"
	"github.com/kprof/kprof/internal/testenv"
)

const (
	// opTimeout bounds one iteration of either path.
	opTimeout = 30 * time.Second
	// maxBody bounds the bare GET like the engine's default limit.
	maxBody      = capture.DefaultMaxProfileBytes
	setupTimeout = time.Minute
	stopTimeout  = 30 * time.Second
)

func defaultMinIOPath() string { return testenv.MinIOPath() }

// env is everything both paths use: the target, the store and the clients.
type env struct {
	where, spoolDir string
	profileURL      string

	engine *capture.Engine
	spool  *spool.Spool
	target capture.Target
	policy capture.Policy
	done   *notifier

	httpClient *http.Client
	client     *awss3.Client
	bucket     string

	cleanup []func()
}

func setup(ctx context.Context, o options, log *slog.Logger) (_ *env, err error) {
	e := &env{bucket: o.bucket, httpClient: &http.Client{Timeout: opTimeout}, done: newNotifier()}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	sctx, cancel := context.WithTimeout(ctx, setupTimeout)
	defer cancel()

	// The target: the sample app's handler (net/http/pprof) on a loopback port.
	a, err := app.New(app.Config{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("sample app: %w", err)
	}
	srv := httptest.NewServer(a.Handler())
	e.cleanup = append(e.cleanup, srv.Close)
	base := srv.URL + "/debug/pprof"
	e.profileURL = base + "/" + capture.TypeHeap.Endpoint()

	// The store: MinIO started here, or --endpoint with the AWS default chain.
	endpoint, creds := o.endpoint, (*s3.Credentials)(nil)
	if endpoint == "" {
		m, err := testenv.NewMinIO(o.minio)
		if err != nil {
			return nil, fmt.Errorf("start MinIO (or pass --endpoint): %w", err)
		}
		e.cleanup = append(e.cleanup, func() { _ = m.Close() })
		if err := m.Launch(sctx); err != nil {
			return nil, err
		}
		endpoint = m.Endpoint
		creds = &s3.Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey}
		e.where = "MinIO at " + endpoint + " (started by the benchmark)"
	} else {
		e.where = "S3 endpoint " + endpoint
	}
	if e.client, err = sdkClient(sctx, endpoint, o.region, creds); err != nil {
		return nil, err
	}
	if err := ensureBucket(sctx, e.client, o.bucket); err != nil {
		return nil, err
	}
	st, err := s3.New(sctx, s3.Config{Bucket: o.bucket, Region: o.region, Endpoint: endpoint, Credentials: creds})
	if err != nil {
		return nil, fmt.Errorf("s3 store: %w", err)
	}

	e.spoolDir = o.spoolDir
	if e.spoolDir == "" {
		if e.spoolDir, err = os.MkdirTemp("", "kprof-bench-spool-"); err != nil {
			return nil, fmt.Errorf("spool dir: %w", err)
		}
		dir := e.spoolDir
		e.cleanup = append(e.cleanup, func() { _ = os.RemoveAll(dir) })
	}
	e.spool, err = spool.New(spool.Config{Dir: e.spoolDir, Remote: st, OnUploaded: e.done.uploaded, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := e.spool.Start(sctx); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	e.cleanup = append(e.cleanup, func() { e.shutdown(e.spool.Shutdown, "spool") })

	e.engine, err = capture.New(capture.Config{MaxConcurrent: 1, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("capture engine: %w", err)
	}
	if err := e.engine.Start(sctx); err != nil {
		return nil, fmt.Errorf("capture engine: %w", err)
	}
	e.cleanup = append(e.cleanup, func() { e.shutdown(e.engine.Shutdown, "capture engine") })
	e.target = capture.Target{ID: "bench", BaseURL: base, Meta: storage.Meta{
		Namespace: "bench", Pod: "sample-app", Service: "sample-app", Target: "bench"}}
	e.policy = capture.Policy{Types: []capture.ProfileType{capture.TypeHeap}, Store: e.spool, KeyPrefix: "kprof"}
	return e, nil
}

// close undoes setup, last step first.
func (e *env) close() {
	for _, f := range slices.Backward(e.cleanup) {
		f()
	}
	e.cleanup = nil
}

func (e *env) shutdown(f func(context.Context) error, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		fmt.Fprintf(os.Stderr, "upload: shut down %s: %v\n", what, err)
	}
}

// kprofOnce is path A: it returns the time until the upload was confirmed, the time
// until the spool acknowledged the profile, and the profile's size.
func (e *env) kprofOnce(ctx context.Context) (total, acked time.Duration, size int, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	res := e.engine.CaptureNow(ctx, "bench", e.target, e.policy, capture.ReasonManual)
	acked = time.Since(start)
	if len(res) != 1 || res[0].Err != nil {
		return 0, 0, 0, fmt.Errorf("capture: %v", res)
	}
	if err := e.done.wait(ctx, res[0].Key); err != nil {
		return 0, 0, 0, fmt.Errorf("wait for the upload of %s: %w (spool health: %v)", res[0].Key, err, e.spool.Health())
	}
	return time.Since(start), acked, res[0].Bytes, nil
}

// bareOnce is path B: GET the profile, PutObject its bytes.
func (e *env) bareOnce(ctx context.Context, i int) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.profileURL, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := e.httpClient.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("get %s: %w", e.profileURL, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("get %s: status %d: %w", e.profileURL, resp.StatusCode, err)
	}
	_, err = e.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(e.bucket), Key: aws.String("bare/" + strconv.Itoa(i) + ".pb.gz"),
		Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
	})
	if err != nil {
		return 0, 0, fmt.Errorf("put object: %w", err)
	}
	return time.Since(start), len(body), nil
}

// sdkClient is a plain SDK client for the baseline: static credentials for the MinIO
// started here, the default chain for --endpoint.
func sdkClient(ctx context.Context, endpoint, region string, creds *s3.Credentials) (*awss3.Client, error) {
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(region)}
	if creds != nil {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(creds.AccessKeyID, creds.SecretAccessKey, "")))
	}
	cfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	return awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.UsePathStyle = true
	}), nil
}

func ensureBucket(ctx context.Context, c *awss3.Client, bucket string) error {
	_, err := c.CreateBucket(ctx, &awss3.CreateBucketInput{Bucket: aws.String(bucket)})
	var owned *s3types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// notifier lets a waiter learn that a key was uploaded, whichever comes first.
type notifier struct {
	mu sync.Mutex
	ch map[string]chan struct{}
}

func newNotifier() *notifier { return &notifier{ch: map[string]chan struct{}{}} }

func (n *notifier) get(key string) chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.ch[key]
	if !ok {
		c = make(chan struct{})
		n.ch[key] = c
	}
	return c
}

func (n *notifier) uploaded(key string, _ storage.Meta) { close(n.get(key)) }

func (n *notifier) wait(ctx context.Context, key string) error {
	c := n.get(key)
	defer func() { n.mu.Lock(); delete(n.ch, key); n.mu.Unlock() }()
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
