package testenv

import (
	"context"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

func TestNewMinIOWithoutTheBinaryFailsAndSaysHowToInstallIt(t *testing.T) {
	m, err := NewMinIO("/nonexistent/minio")
	if err == nil || !strings.Contains(err.Error(), "hack/install-minio.sh") || m != nil {
		t.Fatalf("NewMinIO = %v, %v; want an error naming the install script", m, err)
	}
}

func TestLaunchReportsAServerThatExitsAtOnce(t *testing.T) {
	bin, err := exec.LookPath("false")
	if err != nil {
		t.Fatalf("no false(1) to stand in for a crashing server: %v", err)
	}
	m, err := NewMinIO(bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	start := time.Now()
	err = m.Launch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "exited before it was live") {
		t.Fatalf("Launch = %v, want an exited-before-live error", err)
	}
	if waited := time.Since(start); waited > minioLiveTimeout/2 {
		t.Errorf("Launch took %s to see the exit, want it at once", waited)
	}
	if m.cmd != nil {
		t.Error("a failed Launch left the server marked as running")
	}
}

func TestMinIOLifecycleWithoutATestingTB(t *testing.T) {
	m, err := NewMinIO(MinIOPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	if err := m.Launch(ctx); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if err := m.Launch(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Fatalf("second Launch = %v, want an already-running error", err)
	}
	if _, err := m.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("kept")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}

	if err := m.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if resp, err := http.Get(m.Endpoint + "/minio/health/live"); err == nil {
		_ = resp.Body.Close()
		t.Fatal("the server still answers after Kill")
	}
	if err := m.Kill(); err != nil {
		t.Errorf("Kill of a stopped server = %v, want nil", err)
	}

	if err := m.Launch(ctx); err != nil {
		t.Fatalf("Launch after Kill: %v", err)
	}
	if _, err := m.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("kept")}); err != nil {
		t.Errorf("bucket created before Kill is gone after the restart: %v", err)
	}

	dir := m.dir
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left %s behind: %v", dir, err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
}

func TestAMinIOInADirectoryOfItsOwnKeepsItsBucketsForTheNextServer(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	first, err := NewMinIOIn(MinIOPath(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = first.Close() })
	if err := first.Launch(ctx); err != nil {
		t.Fatalf("Launch: %v", err)
	}
	if _, err := first.Client().CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("kept")}); err != nil {
		t.Fatalf("create bucket: %v", err)
	}
	if err := first.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Close removed the caller's directory: %v", err)
	}

	second, err := NewMinIOIn(MinIOPath(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	if err := second.Launch(ctx); err != nil {
		t.Fatalf("Launch of the second server: %v", err)
	}
	if _, err := second.Client().HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("kept")}); err != nil {
		t.Errorf("the second server in the same directory does not have the first one's bucket: %v", err)
	}
}
