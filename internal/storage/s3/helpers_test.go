package s3

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

const (
	testBucket = "profiles"
	// maxTestObject bounds every read of an object in tests.
	maxTestObject = 64 << 20
)

// startMinIO starts MinIO with an isolated AWS environment and creates testBucket.
func startMinIO(t *testing.T) *testenv.MinIO {
	t.Helper()
	isolateAWSEnv(t)
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, testBucket)
	return m
}

// isolateAWSEnv keeps the machine's AWS settings out of a test: no credentials or
// region from the environment, empty shared config files, no instance metadata calls.
// Variables are restored when t ends.
func isolateAWSEnv(t *testing.T) {
	t.Helper()
	for _, k := range []string{
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY", "AWS_SECRET_KEY",
		"AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
		"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
		"AWS_CONTAINER_AUTHORIZATION_TOKEN", "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
		"AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS", "AWS_CA_BUNDLE",
	} {
		t.Setenv(k, "")
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	for k, name := range map[string]string{"AWS_CONFIG_FILE": "config", "AWS_SHARED_CREDENTIALS_FILE": "credentials"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv(k, p)
	}
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
}

// newMinIOStore returns a Store on m with m's root credentials, after edit.
func newMinIOStore(t *testing.T, m *testenv.MinIO, edit func(*Config), extra ...func(*config.LoadOptions) error) *Store {
	t.Helper()
	cfg := Config{
		Bucket:      testBucket,
		Endpoint:    m.Endpoint,
		Credentials: &Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: m.SecretKey},
		Timeout:     30 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	s, err := newStore(context.Background(), cfg, extra...)
	if err != nil {
		t.Fatalf("new store: %v", err)
	}
	return s
}

// testCtx is a context that ends with t, bounded so a hung call fails the test.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// heapProfile returns a real gzipped pprof heap profile of this process.
func heapProfile(t *testing.T) []byte {
	t.Helper()
	runtime.GC()
	var buf bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&buf, 0); err != nil {
		t.Fatalf("write heap profile: %v", err)
	}
	return buf.Bytes()
}

func sampleMeta() storage.Meta {
	return storage.Meta{
		Namespace:  "shop",
		Pod:        "cart-7d9f",
		Node:       "node-1",
		Service:    "cart",
		Container:  "app",
		Target:     "shop/cart-7d9f",
		Config:     "shop/checkout",
		Reason:     "threshold: cpu 93% of request >= 80%",
		Type:       "heap",
		CapturedAt: time.Date(2025, 3, 4, 5, 6, 7, 890_123_456, time.UTC),
		Labels:     map[string]string{"app": "cart", "app.kubernetes.io/version": "1.2.3"},
	}
}

// getObject downloads key with m's root credentials.
func getObject(t *testing.T, m *testenv.MinIO, key string) []byte {
	t.Helper()
	out, err := m.Client().GetObject(testCtx(t), &awss3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, maxTestObject+1))
	if err != nil {
		t.Fatalf("read %s: %v", key, err)
	}
	if len(b) > maxTestObject {
		t.Fatalf("object %s is larger than %d bytes", key, maxTestObject)
	}
	return b
}

// headObject returns HeadObject of key (checksum mode enabled) with m's root credentials.
func headObject(t *testing.T, m *testenv.MinIO, key string) *awss3.HeadObjectOutput {
	t.Helper()
	out, err := m.Client().HeadObject(testCtx(t), &awss3.HeadObjectInput{
		Bucket: aws.String(testBucket), Key: aws.String(key), ChecksumMode: s3types.ChecksumModeEnabled,
	})
	if err != nil {
		t.Fatalf("head %s: %v", key, err)
	}
	return out
}
