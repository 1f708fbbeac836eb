package testenv

import (
	"context"
	"errors"
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

// MinIO is a real MinIO server on random loopback ports, with its data and log in
// a temporary directory of its own. NewMinIO, Launch, Kill and Close run it from
// any program (bench/upload does); StartMinIO, Start, Stop and CreateBucket do
// the same in a test and fail it on error.
type MinIO struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	Region    string

	binary  string
	dir     string // holds data/ and minio.log; removed by Close unless keep
	keep    bool   // dir was the caller's (NewMinIOIn): Close leaves it
	port    int
	console int
	cmd     *exec.Cmd     // nil when not running
	exited  chan struct{} // closed once cmd has exited
}

const (
	minioLiveTimeout = 30 * time.Second
	minioStopTimeout = 10 * time.Second
	// testKMSKey is a fixed 32-byte base64 key so SSE-S3 (AES256) works.
	testKMSKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
)

// MinIOPath is where hack/install-minio.sh puts the binary.
func MinIOPath() string {
	if p := os.Getenv("KPROF_MINIO"); p != "" {
		return p
	}
	return toolPath("minio")
}

// NewMinIO prepares a server that runs binary (usually MinIOPath()) on two free
// loopback ports with a new temporary directory for its data and log. It does not
// start it: Launch does. Close removes the directory.
func NewMinIO(binary string) (*MinIO, error) {
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("MinIO not installed at %s (run `make tools` or hack/install-minio.sh): %w", binary, err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kprof-minio-")
	if err != nil {
		return nil, fmt.Errorf("create minio directory: %w", err)
	}
	return &MinIO{
		Endpoint:  "http://127.0.0.1:" + strconv.Itoa(port),
		AccessKey: "kprof-test", SecretKey: "kprof-test-secret-key", Region: "us-east-1",
		binary: binary, dir: dir, port: port, console: console,
	}, nil
}

// NewMinIOIn is NewMinIO with its data and log in dir, created when missing and
// kept by Close, so a later server can serve the same buckets (bench/list reuses
// a filled bucket this way).
func NewMinIOIn(binary, dir string) (*MinIO, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create minio directory: %w", err)
	}
	m, err := NewMinIO(binary)
	if err != nil {
		return nil, err
	}
	if err := os.Remove(m.dir); err != nil {
		return nil, fmt.Errorf("remove minio directory: %w", err)
	}
	m.dir, m.keep = dir, true
	return m, nil
}

// StartMinIO starts MinIO (MinIOPath) with its data in a temp dir; when t ends it
// is stopped, its log is printed if t failed, and its data is removed.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	m, err := NewMinIO(MinIOPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Kill(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("minio log (tail):\n%s", m.LogTail(4096))
		}
		if err := m.Close(); err != nil {
			t.Error(err)
		}
	})
	m.Start(t)
	return m
}

// Start (re)starts the server on the same port and data directory and waits
// until it is live.
func (m *MinIO) Start(t testing.TB) {
	t.Helper()
	if err := m.Launch(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// Stop kills the server (an outage, as far as clients can tell); data stays.
func (m *MinIO) Stop(t testing.TB) {
	t.Helper()
	if err := m.Kill(); err != nil {
		t.Fatal(err)
	}
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

// Launch (re)starts the server on the same port and data directory and waits
// until it is live, for at most 30s or until ctx ends; the server itself outlives
// ctx. The error of a server that does not come up holds the tail of its log.
func (m *MinIO) Launch(ctx context.Context) error {
	if m.cmd != nil {
		return errors.New("minio already running")
	}
	logf, err := os.OpenFile(m.logPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open minio log: %w", err)
	}
	cmd := exec.Command(m.binary, "server", filepath.Join(m.dir, "data"), "--quiet",
		"--address", "127.0.0.1:"+strconv.Itoa(m.port), "--console-address", "127.0.0.1:"+strconv.Itoa(m.console))
	cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.AccessKey, "MINIO_ROOT_PASSWORD="+m.SecretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off", "MINIO_KMS_SECRET_KEY=kprof-test:"+testKMSKey)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start minio: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(exited) }()
	m.cmd, m.exited = cmd, exited

	if err := m.waitLive(ctx); err != nil {
		_ = m.Kill()
		return fmt.Errorf("%w\nminio log (tail):\n%s", err, m.LogTail(4096))
	}
	return nil
}

func (m *MinIO) waitLive(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, minioLiveTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.Endpoint+"/minio/health/live", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("health check: %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("minio not live at %s: %w", m.Endpoint, errors.Join(err, ctx.Err()))
		case <-m.exited:
			return fmt.Errorf("minio exited before it was live at %s", m.Endpoint)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Kill kills the server (an outage, as far as clients can tell) and waits until
// its port refuses connections; the data stays for the next Launch. It does
// nothing when the server is not running.
func (m *MinIO) Kill() error {
	if m.cmd == nil {
		return nil
	}
	if err := m.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill minio: %w", err)
	}
	deadline := time.Now().Add(minioStopTimeout)
	select {
	case <-m.exited:
	case <-time.After(time.Until(deadline)):
		return fmt.Errorf("minio (pid %d) did not exit within %s of being killed", m.cmd.Process.Pid, minioStopTimeout)
	}
	m.cmd, m.exited = nil, nil
	addr := "127.0.0.1:" + strconv.Itoa(m.port)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return nil
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			return fmt.Errorf("minio exited but %s still accepts connections", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Close kills the server and removes its data and log (a NewMinIOIn server's stay).
// It is idempotent.
func (m *MinIO) Close() error {
	err := m.Kill()
	if m.dir != "" && !m.keep {
		if rmErr := os.RemoveAll(m.dir); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("remove minio directory: %w", rmErr))
		} else {
			m.dir = ""
		}
	}
	return err
}

// LogTail returns the last n bytes at most of the server's log.
func (m *MinIO) LogTail(n int) string {
	b, err := os.ReadFile(m.logPath())
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	return tail(b, n)
}

func (m *MinIO) logPath() string { return filepath.Join(m.dir, "minio.log") }

// UseAsDefaultCredentials points the AWS default credential chain of this test
// process at m's root credentials, as an operator pod's environment would, and
// clears every other source the chain or the SDK would read (profile files, web
// identity, endpoint overrides, EC2 metadata), for the rest of t.
func (m *MinIO) UseAsDefaultCredentials(t testing.TB) {
	t.Helper()
	missing := filepath.Join(t.TempDir(), "no-aws-config")
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": m.AccessKey, "AWS_SECRET_ACCESS_KEY": m.SecretKey, "AWS_SESSION_TOKEN": "",
		"AWS_PROFILE": "", "AWS_REGION": "", "AWS_DEFAULT_REGION": "", "AWS_ROLE_ARN": "", "AWS_WEB_IDENTITY_TOKEN_FILE": "",
		"AWS_ENDPOINT_URL": "", "AWS_ENDPOINT_URL_S3": "", "AWS_CA_BUNDLE": "",
		"AWS_CONFIG_FILE": missing, "AWS_SHARED_CREDENTIALS_FILE": missing, "AWS_EC2_METADATA_DISABLED": "true",
	} {
		t.Setenv(k, v)
	}
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

// freeLoopbackPort returns a loopback port that was free a moment ago; an error fails t.
func freeLoopbackPort(t testing.TB) int {
	t.Helper()
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free loopback port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n bytes at most of b.
func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
