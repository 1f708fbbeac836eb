package testenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// MinIO is a real MinIO server on a random loopback port, for tests.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string
	dir       string
	port      int
	console   int
	cmd       *exec.Cmd
	logPath   string
}

// MinIOPath is where hack/install-minio.sh puts the binary.
func MinIOPath() string {
	if p := os.Getenv("KPROF_MINIO"); p != "" {
		return p
	}
	cache := os.Getenv("KPROF_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "kprof")
	}
	return filepath.Join(cache, "bin", "minio")
}

// StartMinIO starts MinIO with its data in a temp dir; it is stopped when t ends.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	if _, err := os.Stat(MinIOPath()); err != nil {
		t.Fatalf("MinIO not installed at %s (run `make tools` or hack/install-minio.sh): %v", MinIOPath(), err)
	}
	dir := t.TempDir()
	m := &MinIO{
		AccessKey: "kprof-test", SecretKey: "kprof-test-secret-key", Region: "us-east-1",
		dir: filepath.Join(dir, "data"), port: freeLoopbackPort(t), console: freeLoopbackPort(t),
		logPath: filepath.Join(dir, "minio.log"),
	}
	m.Endpoint = "http://127.0.0.1:" + strconv.Itoa(m.port)
	m.Start(t)
	t.Cleanup(func() {
		m.Stop(t)
		if t.Failed() {
			if b, err := os.ReadFile(m.logPath); err == nil && len(b) > 0 {
				t.Logf("minio log (tail):\n%s", tail(b, 4096))
			}
		}
	})
	return m
}

// Start (re)starts the server on the same port and data directory and waits until it is live.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	if m.cmd != nil {
		t.Fatalf("minio already running")
	}
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(MinIOPath(), "server", m.dir, "--quiet",
		"--address", "127.0.0.1:"+strconv.Itoa(m.port), "--console-address", "127.0.0.1:"+strconv.Itoa(m.console))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_KMS_SECRET_KEY=kprof-test:"+testKMSKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start minio: %v", err)
	}
	m.cmd = cmd
	go func() { _ = cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(30 * time.Second)
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(m.Endpoint + "/minio/health/live")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("minio not live at %s after 30s: %v", m.Endpoint, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// testKMSKey is a fixed 32-byte base64 key so SSE-S3 (AES256) works in tests.
const testKMSKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// Stop kills the server (an outage, as far as clients can tell); data stays.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	// Wait for the port to close so a client sees the outage at once.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(m.port), 100*time.Millisecond)
		if err != nil {
			break
		}
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	m.cmd = nil
}

// Client returns an S3 client with the root credentials.
func (m *MinIO) Client() *s3.Client {
	return s3.New(s3.Options{
		Region:       m.Region,
		BaseEndpoint: aws.String(m.Endpoint),
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(m.AccessKey, m.SecretKey, ""),
	})
}

// CreateBucket creates a bucket with the root credentials.
func (m *MinIO) CreateBucket(t testing.TB, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
}

func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return fmt.Sprintf("%s", b)
}
