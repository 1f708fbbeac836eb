package s3

// Failures MinIO cannot be made to show: AWS region redirects, and a store that
// answers HeadObject with something other than what was sent (a backend without
// additional checksums, a corrupted or replaced object). A small fake S3 plays them.

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/kprof/kprof/internal/storage"
)

// fakeS3 answers path-style PutObject, HeadObject and HeadBucket for one bucket.
type fakeS3 struct {
	// bucketRegion, when set, makes every request a redirect to that region.
	bucketRegion string
	// bareBadRequest answers every HEAD with 400 and nothing else.
	bareBadRequest bool
	// head edits the HeadObject answer of a stored object (nil: answer truthfully).
	head func(h http.Header, status *int)
	// putError, when set, is the error code PutObject answers with (status 400).
	putError string
	// markerPutError, when set, is the error code a PutObject of an index marker answers with.
	markerPutError string

	mu         sync.Mutex
	objects    map[string]fakeObject
	putHeaders []http.Header
}

type fakeObject struct {
	size int
	meta http.Header
	sse  string
}

func (f *fakeS3) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if f.bareBadRequest && r.Method == http.MethodHead {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if f.bucketRegion != "" {
		w.Header().Set("X-Amz-Bucket-Region", f.bucketRegion)
		w.WriteHeader(http.StatusMovedPermanently)
		if r.Method != http.MethodHead {
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>PermanentRedirect</Code>`+
				`<Message>The bucket you are attempting to access must be addressed using the specified endpoint.</Message>`+
				`<Bucket>%s</Bucket></Error>`, testBucket)
		}
		return
	}
	key := strings.TrimPrefix(r.URL.Path, "/"+testBucket+"/")
	switch r.Method {
	case http.MethodPut:
		f.mu.Lock()
		f.putHeaders = append(f.putHeaders, r.Header.Clone())
		f.mu.Unlock()
		code := f.putError
		if storage.IsMarkerKey(key) && f.markerPutError != "" {
			code = f.markerPutError
		}
		if code != "" {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>fake</Message></Error>`, code)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		size := len(body)
		if d := r.Header.Get("X-Amz-Decoded-Content-Length"); d != "" {
			size, _ = strconv.Atoi(d) // aws-chunked: the body carries chunk framing
		}
		meta := http.Header{}
		for k, v := range r.Header {
			if strings.HasPrefix(strings.ToLower(k), "x-amz-meta-") {
				meta[k] = v
			}
		}
		f.mu.Lock()
		f.objects[key] = fakeObject{size: size, meta: meta, sse: r.Header.Get("X-Amz-Server-Side-Encryption")}
		f.mu.Unlock()
		w.Header().Set("ETag", `"fake"`)
	case http.MethodHead:
		f.mu.Lock()
		o, ok := f.objects[key]
		f.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		h := w.Header()
		for k, v := range o.meta {
			h[k] = v
		}
		h.Set("Content-Length", strconv.Itoa(o.size))
		if o.sse != "" {
			h.Set("X-Amz-Server-Side-Encryption", o.sse)
		}
		status := http.StatusOK
		if f.head != nil {
			f.head(h, &status)
		}
		w.WriteHeader(status)
	default:
		http.Error(w, "not implemented by the fake", http.StatusNotImplemented)
	}
}

func newFakeStore(t *testing.T, f *fakeS3, edit func(*Config)) *Store {
	t.Helper()
	isolateAWSEnv(t)
	f.objects = map[string]fakeObject{}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return newStoreFor(t, srv.URL, edit)
}

func newStoreFor(t *testing.T, endpoint string, edit func(*Config)) *Store {
	t.Helper()
	cfg := Config{Bucket: testBucket, Endpoint: endpoint, Credentials: &Credentials{AccessKeyID: "a", SecretAccessKey: "b"}}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestVerificationCatchesAStoredObjectThatDiffers(t *testing.T) {
	data := []byte("a profile")
	sum := sha256.Sum256(data)
	rightChecksum := base64.StdEncoding.EncodeToString(sum[:])
	otherSum := sha256.Sum256([]byte("another profile"))

	tests := []struct {
		name     string
		sse      string
		head     func(h http.Header, status *int)
		wantKind storage.ErrorKind
		wantMsg  string
	}{
		{
			name:     "an object with the right length and checksum verifies",
			head:     func(h http.Header, _ *int) { h.Set("X-Amz-Checksum-Sha256", rightChecksum) },
			wantKind: "",
		},
		{
			name:     "a store that reports no checksum fails verification",
			head:     func(http.Header, *int) {},
			wantKind: storage.KindVerifyFailed,
			wantMsg:  "reported no SHA-256 checksum",
		},
		{
			name: "a different checksum fails verification",
			head: func(h http.Header, _ *int) {
				h.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(otherSum[:]))
			},
			wantKind: storage.KindVerifyFailed,
			wantMsg:  "expected " + rightChecksum,
		},
		{
			name: "a different length fails verification",
			head: func(h http.Header, _ *int) {
				h.Set("X-Amz-Checksum-Sha256", rightChecksum)
				h.Set("Content-Length", strconv.Itoa(len(data)-1))
			},
			wantKind: storage.KindVerifyFailed,
			wantMsg:  fmt.Sprintf("has %d bytes, sent %d", len(data)-1, len(data)),
		},
		{
			name: "an object replaced by another writer fails verification",
			head: func(h http.Header, _ *int) {
				h.Set("X-Amz-Checksum-Sha256", rightChecksum)
				h.Set("X-Amz-Meta-Sha256", fmt.Sprintf("%x", otherSum))
			},
			wantKind: storage.KindVerifyFailed,
			wantMsg:  "replaced by another writer",
		},
		{
			name:     "an object that is gone after the upload fails verification",
			head:     func(_ http.Header, status *int) { *status = http.StatusNotFound },
			wantKind: storage.KindVerifyFailed,
			wantMsg:  "not there after the upload",
		},
		{
			name: "encryption that the store did not apply fails verification",
			sse:  SSEAES256,
			head: func(h http.Header, _ *int) {
				h.Set("X-Amz-Checksum-Sha256", rightChecksum)
				h.Del("X-Amz-Server-Side-Encryption")
			},
			wantKind: storage.KindVerifyFailed,
			wantMsg:  `server-side encryption is "", requested "AES256"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newFakeStore(t, &fakeS3{head: tt.head}, func(c *Config) { c.SSE = tt.sse })
			err := s.Put(testCtx(t), "k/profile", data, storage.Meta{Type: "cpu"})
			if got := storage.KindOf(err); got != tt.wantKind {
				t.Fatalf("KindOf = %q, want %q; error: %v", got, tt.wantKind, err)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not contain %q", err, tt.wantMsg)
			}
		})
	}
}

func TestABareBadRequestFromHeadBucketNamesTheLikelyCauses(t *testing.T) {
	s := newFakeStore(t, &fakeS3{bareBadRequest: true}, func(c *Config) { c.Region = "us-east-1" })
	err := s.Check(testCtx(t))
	if got := storage.KindOf(err); got != storage.KindStoreError {
		t.Fatalf("KindOf = %q, want %q; error: %v", got, storage.KindStoreError, err)
	}
	for _, want := range []string{`Region "us-east-1" differs`, `bucket name "profiles"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

func TestABucketInAnotherRegionIsNamed(t *testing.T) {
	s := newFakeStore(t, &fakeS3{bucketRegion: "eu-west-1"}, func(c *Config) { c.Region = "us-east-1" })
	for name, err := range map[string]error{
		"Put":   s.Put(testCtx(t), "k", []byte("x"), storage.Meta{}),
		"Check": s.Check(testCtx(t)),
	} {
		t.Run(name+" says which region the bucket is in", func(t *testing.T) {
			if got := storage.KindOf(err); got != storage.KindStoreError {
				t.Fatalf("KindOf = %q, want %q; error: %v", got, storage.KindStoreError, err)
			}
			if want := `bucket "profiles" is in region "eu-west-1", not "us-east-1"`; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
}

func TestASinglePutSendsItsChecksumForTheServerToCheck(t *testing.T) {
	data := []byte("a profile")
	sum := sha256.Sum256(data)
	want := base64.StdEncoding.EncodeToString(sum[:])

	t.Run("the SHA-256 of the data travels in the x-amz-checksum-sha256 header", func(t *testing.T) {
		f := &fakeS3{head: func(h http.Header, _ *int) { h.Set("X-Amz-Checksum-Sha256", want) }}
		s := newFakeStore(t, f, nil)
		if err := s.Put(testCtx(t), "k", data, storage.Meta{}); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.putHeaders) != 2 {
			t.Fatalf("%d PUT requests, want 2 (the profile, then its index marker)", len(f.putHeaders))
		}
		if got := f.putHeaders[0].Get("X-Amz-Checksum-Sha256"); got != want {
			t.Fatalf("x-amz-checksum-sha256 = %q, want %q", got, want)
		}
		if got := f.putHeaders[0].Get("Content-Type"); got != contentType {
			t.Fatalf("Content-Type = %q, want %q", got, contentType)
		}
	})
	t.Run("the server finding a different checksum is VerifyFailed", func(t *testing.T) {
		s := newFakeStore(t, &fakeS3{putError: "BadDigest"}, nil)
		err := s.Put(testCtx(t), "k", data, storage.Meta{})
		if got := storage.KindOf(err); got != storage.KindVerifyFailed {
			t.Fatalf("KindOf = %q, want %q; error: %v", got, storage.KindVerifyFailed, err)
		}
		if !strings.Contains(err.Error(), "checksum of the received bytes does not match (BadDigest)") {
			t.Fatalf("error %q does not name the checksum mismatch", err)
		}
	})
}

func TestTLSEndpoints(t *testing.T) {
	tests := []struct {
		name     string
		caBundle bool
		wantKind storage.ErrorKind
	}{
		{name: "an endpoint whose certificate is not trusted is EndpointUnreachable", wantKind: storage.KindEndpointUnreachable},
		{name: "AWS_CA_BUNDLE makes the endpoint's certificate trusted", caBundle: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAWSEnv(t)
			data := []byte("a profile")
			sum := sha256.Sum256(data)
			f := &fakeS3{objects: map[string]fakeObject{}, head: func(h http.Header, _ *int) {
				h.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(sum[:]))
			}}
			srv := httptest.NewUnstartedServer(f)
			srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are the point
			srv.StartTLS()
			t.Cleanup(srv.Close)
			if tt.caBundle {
				path := filepath.Join(t.TempDir(), "ca.pem")
				pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
				if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
					t.Fatal(err)
				}
				t.Setenv("AWS_CA_BUNDLE", path)
			}
			s := newStoreFor(t, srv.URL, nil)
			err := s.Put(testCtx(t), "k", data, storage.Meta{})
			if got := storage.KindOf(err); got != tt.wantKind {
				t.Fatalf("KindOf = %q, want %q; error: %v", got, tt.wantKind, err)
			}
			if tt.wantKind != "" && !strings.Contains(err.Error(), "certificate") {
				t.Fatalf("error %q does not name the certificate problem", err)
			}
		})
	}
}
