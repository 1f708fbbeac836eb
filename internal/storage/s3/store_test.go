package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/kprof/kprof/internal/storage"
)

func TestPutStoresAProfileThatPprofOpens(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, nil)
	data := heapProfile(t)
	meta := sampleMeta()
	key := storage.RenderKey(storage.DefaultKeyTemplate, "kprof", meta)

	if err := s.Put(testCtx(t), key, data, meta); err != nil {
		t.Fatalf("Put: %v", err)
	}

	t.Run("the object holds exactly the bytes that were put", func(t *testing.T) {
		if got := getObject(t, m, key); !bytes.Equal(got, data) {
			t.Fatalf("downloaded %d bytes that differ from the %d put", len(got), len(data))
		}
	})
	t.Run("the object carries the profile's metadata", func(t *testing.T) {
		h := headObject(t, m, key)
		want := map[string]string{
			"namespace":                       "shop",
			"pod":                             "cart-7d9f",
			"node":                            "node-1",
			"service":                         "cart",
			"container":                       "app",
			"config":                          "shop/checkout",
			"type":                            "heap",
			"reason":                          "threshold: cpu 93%25 of request >= 80%25",
			"captured-at":                     "2025-03-04T05:06:07.890123456Z",
			"label-app":                       "cart",
			"label-app-kubernetes-io-version": "1.2.3",
			"sha256":                          planUpload(data, DefaultPartSize).sha256Hex,
		}
		for k, v := range want {
			if got := h.Metadata[k]; got != v {
				t.Errorf("metadata %s = %q, want %q", k, got, v)
			}
		}
		if got := aws.ToString(h.ContentType); got != contentType {
			t.Errorf("content type = %q, want %q", got, contentType)
		}
		if got, want := aws.ToString(h.ChecksumSHA256), planUpload(data, DefaultPartSize).checksum; got != want {
			t.Errorf("stored SHA-256 checksum = %q, want %q", got, want)
		}
	})
	t.Run("go tool pprof reads the downloaded file", func(t *testing.T) {
		goBin, err := exec.LookPath("go")
		if err != nil {
			t.Fatalf("the go command is needed to run go tool pprof: %v", err)
		}
		path := filepath.Join(t.TempDir(), "heap.pb.gz")
		if err := os.WriteFile(path, getObject(t, m, key), 0o600); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-raw", path).CombinedOutput()
		if err != nil {
			t.Fatalf("go tool pprof -raw: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "PeriodType: space bytes") || !strings.Contains(string(out), "Samples:") {
			t.Fatalf("go tool pprof -raw did not print a heap profile:\n%.2000s", out)
		}
	})
}

func TestPutUploadsLargeObjectsInPartsAndVerifiesThem(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, func(c *Config) { c.PartSize = MinPartSize })

	tests := []struct {
		name      string
		size      int
		wantParts int
	}{
		{name: "an object one byte below the part size is a single put", size: int(MinPartSize) - 1, wantParts: 0},
		{name: "an object of exactly the part size is a multipart upload of one part", size: int(MinPartSize), wantParts: 1},
		{name: "a 12 MiB object is a multipart upload of three parts", size: 12 << 20, wantParts: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := make([]byte, tt.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("large/%d.bin", tt.size)
			if err := s.Put(testCtx(t), key, data, storage.Meta{Type: "cpu"}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if got := getObject(t, m, key); !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes that differ from the %d put", len(got), len(data))
			}
			h := headObject(t, m, key)
			got := aws.ToString(h.ChecksumSHA256)
			wantSuffix := fmt.Sprintf("-%d", tt.wantParts)
			if tt.wantParts == 0 {
				if strings.Contains(got, "-") || h.ChecksumType != s3types.ChecksumTypeFullObject {
					t.Fatalf("checksum %q (%s), want a full-object checksum of a single put", got, h.ChecksumType)
				}
			} else if !strings.HasSuffix(got, wantSuffix) || h.ChecksumType != s3types.ChecksumTypeComposite {
				t.Fatalf("checksum %q (%s), want a composite checksum ending in %q", got, h.ChecksumType, wantSuffix)
			}
		})
	}
}

func TestPutEncryptsServerSide(t *testing.T) {
	m := startMinIO(t)
	tests := []struct {
		name     string
		sse      string
		kmsKeyID string
		size     int
	}{
		{name: "SSE-S3 (AES256) is applied to a single put", sse: SSEAES256, size: 1 << 10},
		{name: "SSE-S3 (AES256) is applied to a multipart upload", sse: SSEAES256, size: 6 << 20},
		{name: "SSE-KMS with the default key is applied", sse: SSEKMS, size: 1 << 10},
		{name: "SSE-KMS with the named key kprof-test is applied", sse: SSEKMS, kmsKeyID: "kprof-test", size: 1 << 10},
		{name: "SSE-KMS with a named key is applied to a multipart upload", sse: SSEKMS, kmsKeyID: "kprof-test", size: 6 << 20},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newMinIOStore(t, m, func(c *Config) {
				c.SSE, c.KMSKeyID, c.PartSize = tt.sse, tt.kmsKeyID, MinPartSize
			})
			data := make([]byte, tt.size)
			if _, err := rand.Read(data); err != nil {
				t.Fatal(err)
			}
			key := fmt.Sprintf("sse/%d", i)
			if err := s.Put(testCtx(t), key, data, storage.Meta{Type: "heap"}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			h := headObject(t, m, key)
			if string(h.ServerSideEncryption) != tt.sse {
				t.Fatalf("HeadObject ServerSideEncryption = %q, want %q", h.ServerSideEncryption, tt.sse)
			}
			if tt.kmsKeyID != "" && !strings.HasSuffix(aws.ToString(h.SSEKMSKeyId), tt.kmsKeyID) {
				t.Fatalf("HeadObject SSEKMSKeyId = %q, want the key %q", aws.ToString(h.SSEKMSKeyId), tt.kmsKeyID)
			}
			if got := getObject(t, m, key); !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes that differ from the %d put", len(got), len(data))
			}
		})
	}
}

func TestPutKeepsMetadataBelowTheS3Limit(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, func(c *Config) { c.MaxMetadataLabels = 1000 })
	meta := sampleMeta()
	meta.Reason = strings.Repeat("very long reason ", 100)
	meta.Labels = map[string]string{}
	for i := range 100 {
		meta.Labels[fmt.Sprintf("example.com/label-%03d", i)] = strings.Repeat("v", 300) + "é"
	}

	if err := s.Put(testCtx(t), "many-labels", []byte("profile"), meta); err != nil {
		t.Fatalf("Put with 100 long labels: %v", err)
	}
	h := headObject(t, m, "many-labels")
	if size := metadataSize(h.Metadata); size >= 2048 {
		t.Fatalf("stored metadata is %d bytes, want < 2048", size)
	}
	if h.Metadata["pod"] != "cart-7d9f" || h.Metadata["type"] != "heap" {
		t.Fatalf("fixed fields missing: %v", h.Metadata)
	}
	if h.Metadata["labels-omitted"] == "" {
		t.Fatalf("labels-omitted is not set although labels were left out: %v", h.Metadata)
	}
}

func TestConcurrentPutsAllLand(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, nil)
	ctx := testCtx(t)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.Put(ctx, fmt.Sprintf("concurrent/%d", i), []byte(fmt.Sprintf("profile %d", i)), storage.Meta{Type: "cpu"})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Put %d: %v", i, err)
		}
		if got, want := string(getObject(t, m, fmt.Sprintf("concurrent/%d", i))), fmt.Sprintf("profile %d", i); got != want {
			t.Fatalf("object %d = %q, want %q", i, got, want)
		}
	}
}

func TestPutRejectsKeysS3WouldMangle(t *testing.T) {
	isolateAWSEnv(t)
	s, err := New(context.Background(), Config{Bucket: testBucket, Endpoint: "http://127.0.0.1:1",
		Credentials: &Credentials{AccessKeyID: "a", SecretAccessKey: "b"}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, key, want string }{
		{"an empty key", "", "key is empty"},
		{"a key with a leading slash", "/a/b", "must not start with '/'"},
		{"a key with a dot-dot segment", "a/../b", `".."`},
		{"a key with an empty segment", "a//b", "empty"},
		{"a key with a newline", "a\nb", "control character"},
		{"a key longer than 1024 bytes", strings.Repeat("k", 1025), "1024"},
		{"a key that is not UTF-8", "a\xffb", "UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name+" is rejected before any request", func(t *testing.T) {
			err := s.Put(context.Background(), tt.key, []byte("x"), storage.Meta{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Put(%q) = %v, want an error containing %q", tt.key, err, tt.want)
			}
		})
	}
}
