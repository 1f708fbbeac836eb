package s3

// IRSA end to end against a real STS: MinIO's AssumeRoleWithWebIdentity, trusting a
// small OpenID provider (discovery document + JWKS) that this test runs and whose
// key signs the "service account token".

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

const oidcAudience = "sts.amazonaws.com"

// oidcProvider serves an OpenID discovery document and the JWKS of one RSA key.
type oidcProvider struct {
	url string
	key *rsa.PrivateKey
}

func startOIDCProvider(t *testing.T) *oidcProvider {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &oidcProvider{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                p.url,
			"jwks_uri":                              p.url + "/keys",
			"authorization_endpoint":                p.url + "/authorize",
			"token_endpoint":                        p.url + "/token",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"claims_supported":                      []string{"sub", "iss", "aud", "policy"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "alg": "RS256", "kid": "kprof-test",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	srv := httptest.NewUnstartedServer(mux)
	p.url = "http://" + srv.Listener.Addr().String() // before the handlers can run
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// token returns a signed RS256 JWT like a projected service account token, with a
// "policy" claim that MinIO maps to its built-in readwrite policy.
func (p *oidcProvider) token(t *testing.T) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	now := time.Now()
	signingInput := enc(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "kprof-test"}) + "." + enc(map[string]any{
		"iss": p.url, "aud": oidcAudience, "sub": "system:serviceaccount:kprof-system:kprof-operator",
		"iat": now.Unix(), "nbf": now.Add(-time.Minute).Unix(), "exp": now.Add(time.Hour).Unix(),
		"policy": "readwrite",
	})
	digest := sha256.Sum256([]byte(signingInput))
	sig, err := rsa.SignPKCS1v15(rand.Reader, p.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signingInput + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestIRSAAgainstMinIOsSTSStoresAProfile(t *testing.T) {
	isolateAWSEnv(t)
	oidc := startOIDCProvider(t)
	// MinIO inherits the environment: trust the provider, map the "policy" claim.
	t.Setenv("MINIO_IDENTITY_OPENID_CONFIG_URL", oidc.url+"/.well-known/openid-configuration")
	t.Setenv("MINIO_IDENTITY_OPENID_CLIENT_ID", oidcAudience)
	t.Setenv("MINIO_IDENTITY_OPENID_CLAIM_NAME", "policy")
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, testBucket)

	stranger := startOIDCProvider(t) // a provider MinIO does not trust

	tests := []struct {
		name     string
		token    string
		wantKind storage.ErrorKind
	}{
		{name: "a token from the trusted provider yields credentials that store a profile", token: oidc.token(t)},
		{name: "a token signed by another key is InvalidCredentials", token: stranger.token(t), wantKind: storage.KindInvalidCredentials},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tokenFile := filepath.Join(t.TempDir(), "token")
			if err := os.WriteFile(tokenFile, []byte(tt.token), 0o600); err != nil {
				t.Fatal(err)
			}
			// What the EKS pod identity webhook injects, with STS at MinIO. MinIO ignores a
			// role ARN it does not know when the policy comes from a claim.
			t.Setenv("AWS_ROLE_ARN", "arn:minio:iam:::role/kprof-operator")
			t.Setenv("AWS_WEB_IDENTITY_TOKEN_FILE", tokenFile)
			t.Setenv("AWS_REGION", m.Region)
			t.Setenv("AWS_ENDPOINT_URL_STS", m.Endpoint)

			s, err := New(testCtx(t), Config{Bucket: testBucket, Endpoint: m.Endpoint})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			source, err := s.CredentialSource(testCtx(t))
			data := heapProfile(t)
			key := fmt.Sprintf("irsa/%d/heap.pb.gz", i)
			putErr := s.Put(testCtx(t), key, data, storage.Meta{Type: "heap"})
			if tt.wantKind != "" {
				for name, err := range map[string]error{"CredentialSource": err, "Put": putErr} {
					if got := storage.KindOf(err); got != tt.wantKind {
						t.Fatalf("%s: KindOf = %q, want %q; error: %v", name, got, tt.wantKind, err)
					}
					assertNoSecrets(t, err.Error(), tt.token)
					t.Logf("%s: %v", name, err)
				}
				return
			}
			if err != nil || source != "WebIdentityCredentials" {
				t.Fatalf("CredentialSource = %q, %v, want WebIdentityCredentials", source, err)
			}
			if putErr != nil {
				t.Fatalf("Put with credentials from MinIO's STS: %v", putErr)
			}
			if got := getObject(t, m, key); !bytes.Equal(got, data) {
				t.Fatalf("downloaded %d bytes that differ from the %d put", len(got), len(data))
			}
			if err := s.Check(testCtx(t)); err != nil {
				t.Fatalf("Check with credentials from MinIO's STS: %v", err)
			}
		})
	}
}
