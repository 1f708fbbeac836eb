package s3

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/kprof/kprof/internal/storage"
)

// wrongSecret is a secret key MinIO does not know; no error may show it.
const wrongSecret = "wrong-secret-Zq8vX2pL"

func TestErrorsAreClassifiedAndNameTheProblem(t *testing.T) {
	m := startMinIO(t)
	deadPort := closedLoopbackAddr(t)

	tests := []struct {
		name     string
		edit     func(*Config)
		extra    []func(*config.LoadOptions) error
		wantKind storage.ErrorKind
		wantMsg  []string
	}{
		{
			name:     "a bucket that does not exist is NoSuchBucket",
			edit:     func(c *Config) { c.Bucket = "no-such-bucket" },
			wantKind: storage.KindNoSuchBucket,
			wantMsg:  []string{`bucket "no-such-bucket" does not exist`, "s3://no-such-bucket", m.Endpoint},
		},
		{
			name: "a wrong secret key is InvalidCredentials",
			edit: func(c *Config) {
				c.Credentials = &Credentials{AccessKeyID: m.AccessKey, SecretAccessKey: wrongSecret}
			},
			wantKind: storage.KindInvalidCredentials,
			wantMsg:  []string{"rejected the credentials", "SignatureDoesNotMatch", m.Endpoint},
		},
		{
			name: "an access key the store does not know is InvalidCredentials",
			edit: func(c *Config) {
				c.Credentials = &Credentials{AccessKeyID: "no-such-key", SecretAccessKey: wrongSecret}
			},
			wantKind: storage.KindInvalidCredentials,
			wantMsg:  []string{"rejected the credentials", "InvalidAccessKeyId"},
		},
		{
			name:     "anonymous requests to a private bucket are AccessDenied",
			edit:     func(c *Config) { c.Credentials = nil },
			extra:    []func(*config.LoadOptions) error{config.WithCredentialsProvider(aws.AnonymousCredentials{})},
			wantKind: storage.KindAccessDenied,
			wantMsg:  []string{`access to bucket "profiles" denied`, "AccessDenied"},
		},
		{
			name:     "no credentials anywhere in the default chain is InvalidCredentials",
			edit:     func(c *Config) { c.Credentials = nil },
			wantKind: storage.KindInvalidCredentials,
			wantMsg:  []string{"no usable credentials", "retrieve credentials"},
		},
		{
			name:     "an endpoint with nothing listening is EndpointUnreachable",
			edit:     func(c *Config) { c.Endpoint = "http://" + deadPort },
			wantKind: storage.KindEndpointUnreachable,
			wantMsg:  []string{"cannot reach http://" + deadPort, "connection refused"},
		},
	}
	for _, tt := range tests {
		s := newMinIOStore(t, m, tt.edit, tt.extra...)
		for _, call := range []struct {
			name string
			do   func(context.Context) error
		}{
			{"Put", func(ctx context.Context) error {
				return s.Put(ctx, "k/profile.pb.gz", []byte("x"), storage.Meta{Type: "cpu"})
			}},
			{"Check", s.Check},
		} {
			t.Run(call.name+": "+tt.name, func(t *testing.T) {
				err := call.do(testCtx(t))
				if got := storage.KindOf(err); got != tt.wantKind {
					t.Fatalf("KindOf = %q, want %q; error: %v", got, tt.wantKind, err)
				}
				for _, want := range tt.wantMsg {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not contain %q", err, want)
					}
				}
				assertNoSecrets(t, err.Error(), m.SecretKey, wrongSecret)
			})
		}
	}
}

func TestPutWithAnUnknownKMSKeyNamesTheKey(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, func(c *Config) { c.SSE, c.KMSKeyID = SSEKMS, "no-such-kms-key" })
	err := s.Put(testCtx(t), "kms", []byte("x"), storage.Meta{})
	if got := storage.KindOf(err); got != storage.KindStoreError {
		t.Fatalf("KindOf = %q, want %q; error: %v", got, storage.KindStoreError, err)
	}
	if !strings.Contains(err.Error(), `KMS key "no-such-kms-key"`) {
		t.Fatalf("error %q does not name the KMS key", err)
	}
}

func TestAStoppedEndpointIsUnreachableAndTheStoreRecovers(t *testing.T) {
	m := startMinIO(t)
	s := newMinIOStore(t, m, nil)
	put := func() error { return s.Put(testCtx(t), "outage/profile", []byte("profile"), storage.Meta{Type: "cpu"}) }

	if err := put(); err != nil {
		t.Fatalf("Put before the outage: %v", err)
	}
	m.Stop(t)
	for name, err := range map[string]error{"Put": put(), "Check": s.Check(testCtx(t))} {
		if got := storage.KindOf(err); got != storage.KindEndpointUnreachable {
			t.Fatalf("%s during the outage: KindOf = %q, want %q; error: %v", name, got, storage.KindEndpointUnreachable, err)
		}
		if !strings.Contains(err.Error(), m.Endpoint) {
			t.Fatalf("%s during the outage: error %q does not name the endpoint", name, err)
		}
	}
	m.Start(t)
	if err := put(); err != nil {
		t.Fatalf("Put after the restart: %v", err)
	}
	if err := s.Check(testCtx(t)); err != nil {
		t.Fatalf("Check after the restart: %v", err)
	}
}

func TestContextEndings(t *testing.T) {
	isolateAWSEnv(t)
	tests := []struct {
		name     string
		timeout  time.Duration
		cancel   bool // the caller cancels once the server has the connection
		wantKind storage.ErrorKind
		wantIs   error
	}{
		{
			name:     "the caller cancelling mid-request is a context error, not classified",
			timeout:  time.Minute,
			cancel:   true,
			wantKind: "",
			wantIs:   context.Canceled,
		},
		{
			name:     "the operation timeout expiring against a silent server is EndpointUnreachable",
			timeout:  300 * time.Millisecond,
			wantKind: storage.KindEndpointUnreachable,
			wantIs:   context.DeadlineExceeded,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, accepted := silentServer(t)
			s, err := New(context.Background(), Config{Bucket: testBucket, Endpoint: "http://" + addr, Timeout: tt.timeout,
				Credentials: &Credentials{AccessKeyID: "a", SecretAccessKey: "b"}})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			if tt.cancel {
				go func() {
					select {
					case <-accepted:
						cancel()
					case <-ctx.Done():
					}
				}()
			}
			err = s.Put(ctx, "k", []byte("x"), storage.Meta{})
			if got := storage.KindOf(err); got != tt.wantKind {
				t.Fatalf("KindOf = %q, want %q; error: %v", got, tt.wantKind, err)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("error %v is not %v", err, tt.wantIs)
			}
		})
	}

	t.Run("a context cancelled before Put is returned without a request", func(t *testing.T) {
		s, err := New(context.Background(), Config{Bucket: testBucket, Endpoint: "http://" + closedLoopbackAddr(t),
			Credentials: &Credentials{AccessKeyID: "a", SecretAccessKey: "b"}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		err = s.Put(ctx, "k", []byte("x"), storage.Meta{})
		if !errors.Is(err, context.Canceled) || storage.KindOf(err) != "" {
			t.Fatalf("Put = %v (kind %q), want an unclassified context.Canceled", err, storage.KindOf(err))
		}
	})
}

// closedLoopbackAddr returns a loopback address where nothing listens.
func closedLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// silentServer accepts connections and never answers; accepted is closed at the first.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{})
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		first := true
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			if first {
				close(ch)
				first = false
			}
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return l.Addr().String(), ch
}

func assertNoSecrets(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Fatalf("%q contains a secret", s)
		}
	}
}
