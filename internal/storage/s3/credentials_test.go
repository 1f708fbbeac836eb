package s3

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
)

const (
	testRoleARN = "arn:aws:iam::123456789012:role/kprof-operator"
	// stsAccessKey is what the fake STS issues.
	stsAccessKey = "ASIAFAKESTSISSUED001"
	stsSecretKey = "fake-sts-secret-key-Wq3e"
)

// fakeSTS implements AssumeRoleWithWebIdentity (AWS query protocol).
type fakeSTS struct {
	wantToken string
	reject    bool // answer InvalidIdentityToken

	mu    sync.Mutex
	calls int
	errs  []string // what was wrong with the requests
}

// seen returns how many calls STS answered and what was wrong with them.
func (f *fakeSTS) seen() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]string(nil), f.errs...)
}

func (f *fakeSTS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.calls++
	for field, want := range map[string]string{
		"Action": "AssumeRoleWithWebIdentity", "RoleArn": testRoleARN, "WebIdentityToken": f.wantToken,
	} {
		if got := r.PostForm.Get(field); got != want {
			f.errs = append(f.errs, fmt.Sprintf("%s = %q, want %q", field, got, want))
		}
	}
	f.mu.Unlock()

	w.Header().Set("Content-Type", "text/xml")
	if f.reject {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>`+
			`<Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message>`+
			`</Error><RequestId>fake</RequestId></ErrorResponse>`)
		return
	}
	fmt.Fprintf(w, `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>fake-session-token</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <SubjectFromWebIdentityToken>system:serviceaccount:kprof-system:kprof-operator</SubjectFromWebIdentityToken>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/kprof-operator/session</Arn>
      <AssumedRoleId>AROAFAKE:session</AssumedRoleId>
    </AssumedRoleUser>
    <Audience>sts.amazonaws.com</Audience>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`, stsAccessKey, stsSecretKey, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}

// setWebIdentityEnv sets what the EKS pod identity webhook injects for IRSA, with STS
// at stsURL, and returns the token.
func setWebIdentityEnv(t *testing.T, stsURL string) string {
	t.Helper()
	token := "eyJhbGciOiJSUzI1NiJ9.projected-service-account-token.c2lnbmF0dXJl"
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ROLE_ARN", testRoleARN)
	t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", path)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ENDPOINT_URL_STS", stsURL)
	return token
}

func TestIRSAWebIdentityIsPickedByTheDefaultChain(t *testing.T) {
	tests := []struct {
		name       string
		reject     bool
		wantSource string
		wantKind   storage.ErrorKind
	}{
		{name: "an accepted token yields the web identity credentials STS issued", wantSource: "WebIdentityCredentials"},
		{name: "a token STS rejects is InvalidCredentials", reject: true, wantKind: storage.KindInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAWSEnv(t)
			sts := &fakeSTS{reject: tt.reject}
			srv := httptest.NewServer(sts)
			t.Cleanup(srv.Close)
			sts.wantToken = setWebIdentityEnv(t, srv.URL)

			s, err := New(testCtx(t), Config{Bucket: testBucket})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if calls, _ := sts.seen(); calls != 0 {
				t.Fatalf("New called STS %d times, want none", calls)
			}
			source, err := s.CredentialSource(testCtx(t))
			if got := storage.KindOf(err); got != tt.wantKind {
				t.Fatalf("CredentialSource = %q, %v (kind %q), want kind %q", source, err, got, tt.wantKind)
			}
			if calls, problems := sts.seen(); calls == 0 || len(problems) > 0 {
				t.Fatalf("STS saw %d calls, problems: %v", calls, problems)
			}
			if tt.wantKind != "" {
				if !strings.Contains(err.Error(), "InvalidIdentityToken") {
					t.Fatalf("error %q does not name STS's answer", err)
				}
				assertNoSecrets(t, err.Error(), sts.wantToken)
				return
			}
			if source != tt.wantSource {
				t.Fatalf("CredentialSource = %q, want %q", source, tt.wantSource)
			}
			creds, err := s.creds.Retrieve(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if creds.AccessKeyID != stsAccessKey {
				t.Fatalf("signing access key = %q, want the one STS issued, %q", creds.AccessKeyID, stsAccessKey)
			}
		})
	}
}

func TestCredentialPrecedence(t *testing.T) {
	tests := []struct {
		name       string
		static     *Credentials
		env        map[string]string
		webID      bool
		wantSource string
		wantKey    string
	}{
		{
			name:       "static credentials win over keys in the environment",
			static:     &Credentials{AccessKeyID: "STATICKEY", SecretAccessKey: "static-secret"},
			env:        map[string]string{"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "env-secret"},
			wantSource: "StaticCredentials",
			wantKey:    "STATICKEY",
		},
		{
			name:       "static credentials win over a web identity in the environment",
			static:     &Credentials{AccessKeyID: "STATICKEY", SecretAccessKey: "static-secret"},
			webID:      true,
			wantSource: "StaticCredentials",
			wantKey:    "STATICKEY",
		},
		{
			name:       "without static credentials, keys in the environment are used",
			env:        map[string]string{"AWS_ACCESS_KEY_ID": "ENVKEY", "AWS_SECRET_ACCESS_KEY": "env-secret"},
			wantSource: "EnvConfigCredentials",
			wantKey:    "ENVKEY",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateAWSEnv(t)
			sts := &fakeSTS{}
			srv := httptest.NewServer(sts)
			t.Cleanup(srv.Close)
			if tt.webID {
				sts.wantToken = setWebIdentityEnv(t, srv.URL)
			}
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			s, err := New(testCtx(t), Config{Bucket: testBucket, Endpoint: "http://127.0.0.1:1", Credentials: tt.static})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			source, err := s.CredentialSource(testCtx(t))
			if err != nil || source != tt.wantSource {
				t.Fatalf("CredentialSource = %q, %v, want %q", source, err, tt.wantSource)
			}
			creds, err := s.creds.Retrieve(testCtx(t))
			if err != nil || creds.AccessKeyID != tt.wantKey {
				t.Fatalf("signing access key = %q, %v, want %q", creds.AccessKeyID, err, tt.wantKey)
			}
			if calls, _ := sts.seen(); calls != 0 {
				t.Fatalf("STS was called %d times although other credentials take precedence", calls)
			}
		})
	}
}

func TestNewNeedsARegionForAWS(t *testing.T) {
	isolateAWSEnv(t)
	_, err := New(context.Background(), Config{Bucket: testBucket})
	if err == nil || !strings.Contains(err.Error(), "set Region") {
		t.Fatalf("New without any region = %v, want an error saying to set Region", err)
	}
	t.Setenv("AWS_REGION", "eu-central-1")
	s, err := New(context.Background(), Config{Bucket: testBucket})
	if err != nil {
		t.Fatalf("New with AWS_REGION: %v", err)
	}
	if s.region != "eu-central-1" {
		t.Fatalf("region = %q, want the one from AWS_REGION", s.region)
	}
}
