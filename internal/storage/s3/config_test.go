package s3

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*Config)
		wantErr string
	}{
		{name: "a missing Bucket is rejected naming the field", edit: func(c *Config) { c.Bucket = "" }, wantErr: "Bucket is required"},
		{name: "an s3:// URL as Bucket is rejected", edit: func(c *Config) { c.Bucket = "s3://profiles" }, wantErr: `Bucket "s3://profiles"`},
		{name: "a Bucket with a path is rejected", edit: func(c *Config) { c.Bucket = "profiles/kprof" }, wantErr: "Bucket"},
		{name: "a two-letter Bucket is rejected", edit: func(c *Config) { c.Bucket = "ab" }, wantErr: "Bucket"},
		{name: "a Region with upper case is rejected", edit: func(c *Config) { c.Region = "US-EAST-1" }, wantErr: "Region"},
		{name: "an Endpoint without scheme is rejected", edit: func(c *Config) { c.Endpoint = "minio:9000" }, wantErr: "Endpoint"},
		{name: "an Endpoint with an ftp scheme is rejected", edit: func(c *Config) { c.Endpoint = "ftp://minio:9000" }, wantErr: "scheme must be http or https"},
		{name: "an Endpoint with credentials in it is rejected without echoing them", edit: func(c *Config) { c.Endpoint = "http://user:pa55word@minio:9000" }, wantErr: "must not contain user information"},
		{name: "an Endpoint that does not parse is rejected without echoing its credentials", edit: func(c *Config) { c.Endpoint = "http://user:pa55word@mi nio:9000" }, wantErr: "Endpoint"},
		{name: "an Endpoint with a query is rejected", edit: func(c *Config) { c.Endpoint = "http://minio:9000/?x=1" }, wantErr: "query"},
		{name: "an unknown SSE is rejected", edit: func(c *Config) { c.SSE = "aes256" }, wantErr: `SSE "aes256"`},
		{name: "a KMSKeyID without SSE aws:kms is rejected", edit: func(c *Config) { c.SSE, c.KMSKeyID = SSEAES256, "key" }, wantErr: "KMSKeyID"},
		{name: "Credentials without an access key are rejected", edit: func(c *Config) { c.Credentials = &Credentials{SecretAccessKey: "s"} }, wantErr: "Credentials.AccessKeyID"},
		{name: "Credentials without a secret are rejected", edit: func(c *Config) { c.Credentials = &Credentials{AccessKeyID: "a"} }, wantErr: "Credentials.SecretAccessKey"},
		{name: "a PartSize below 5 MiB is rejected", edit: func(c *Config) { c.PartSize = 1 << 20 }, wantErr: "PartSize"},
		{name: "a PartSize above 5 GiB is rejected", edit: func(c *Config) { c.PartSize = 6 << 30 }, wantErr: "PartSize"},
		{name: "a negative Timeout is rejected", edit: func(c *Config) { c.Timeout = -time.Second }, wantErr: "Timeout"},
		{name: "a negative MaxMetadataLabels is rejected", edit: func(c *Config) { c.MaxMetadataLabels = -1 }, wantErr: "MaxMetadataLabels"},
		{name: "SSE aws:kms with a key id is accepted", edit: func(c *Config) { c.SSE, c.KMSKeyID = SSEKMS, "alias/kprof" }},
		{name: "an https Endpoint with a path is accepted", edit: func(c *Config) { c.Endpoint = "https://objects.example.com/s3" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := Config{Bucket: "profiles"}
			tt.edit(&c)
			err := c.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
			assertNoSecrets(t, err.Error(), "pa55word")
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	tests := []struct {
		name          string
		cfg           Config
		wantPathStyle bool
		wantEndpoint  string
	}{
		{name: "AWS uses virtual-hosted addressing", cfg: Config{Bucket: "profiles"}, wantPathStyle: false},
		{name: "a custom endpoint uses path-style addressing", cfg: Config{Bucket: "profiles", Endpoint: "http://minio:9000/"},
			wantPathStyle: true, wantEndpoint: "http://minio:9000"},
		{name: "an explicit UsePathStyle is kept", cfg: Config{Bucket: "profiles", Endpoint: "http://minio:9000", UsePathStyle: new(bool)},
			wantPathStyle: false, wantEndpoint: "http://minio:9000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			if *c.UsePathStyle != tt.wantPathStyle || c.Endpoint != tt.wantEndpoint {
				t.Fatalf("UsePathStyle = %t, Endpoint = %q, want %t, %q", *c.UsePathStyle, c.Endpoint, tt.wantPathStyle, tt.wantEndpoint)
			}
			if c.PartSize != DefaultPartSize || c.Timeout != DefaultTimeout || c.MaxMetadataLabels != DefaultMaxMetadataLabels {
				t.Fatalf("defaults not applied: PartSize %d, Timeout %s, MaxMetadataLabels %d", c.PartSize, c.Timeout, c.MaxMetadataLabels)
			}
		})
	}
}

func TestCredentialsNeverShow(t *testing.T) {
	const (
		accessKey = "AKIAEXAMPLEACCESS01"
		secret    = "wJalrXUtnFEMI-secret-value"
		token     = "session-token-value-FwoGZX"
	)
	creds := &Credentials{AccessKeyID: accessKey, SecretAccessKey: secret, SessionToken: token}
	cfg := Config{Bucket: "profiles", Endpoint: "http://minio:9000", Credentials: creds}
	// A config that was never validated may carry credentials in its endpoint.
	badEndpoint := Config{Bucket: "profiles", Endpoint: "http://" + accessKey + ":" + secret + "@minio:9000"}

	var logrOut, slogOut bytes.Buffer
	logger := funcr.New(func(prefix, args string) { logrOut.WriteString(args) }, funcr.Options{})
	logger.Info("config", "config", cfg, "credentials", creds, "credentialsValue", *creds)
	slog.New(slog.NewJSONHandler(&slogOut, nil)).Info("config", "config", cfg, "credentials", *creds)
	jsonCfg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}

	renderings := map[string]string{
		"%v of Config":        fmt.Sprintf("%v", cfg),
		"%+v of Config":       fmt.Sprintf("%+v", cfg),
		"%#v of Config":       fmt.Sprintf("%#v", cfg),
		"%v of *Config":       fmt.Sprintf("%v", &cfg),
		"%s of Config":        fmt.Sprintf("%s", cfg),
		"%v of Credentials":   fmt.Sprintf("%v", *creds),
		"%+v of Credentials":  fmt.Sprintf("%+v", *creds),
		"%#v of Credentials":  fmt.Sprintf("%#v", *creds),
		"%+v of *Credentials": fmt.Sprintf("%+v", creds),
		"logr":                logrOut.String(),
		"slog":                slogOut.String(),
		"JSON of Config":      string(jsonCfg),
	}
	t.Run("%v of a Config with credentials in its Endpoint shows neither", func(t *testing.T) {
		out := fmt.Sprintf("%v %+v %#v", badEndpoint, badEndpoint, badEndpoint)
		assertNoSecrets(t, out, accessKey, secret)
		if !strings.Contains(out, "http://minio:9000") {
			t.Fatalf("%q does not show the endpoint's host", out)
		}
	})
	for name, out := range renderings {
		t.Run(name+" shows no key, secret or token", func(t *testing.T) {
			assertNoSecrets(t, out, accessKey, secret, token)
			if !strings.Contains(out, "redacted") {
				t.Fatalf("%s = %q, want it to say the credentials are redacted", name, out)
			}
		})
	}

	t.Run("String of the store names the bucket and endpoint only", func(t *testing.T) {
		isolateAWSEnv(t)
		s, err := New(logr.NewContext(context.Background(), logger), cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := s.String(), "s3://profiles@http://minio:9000"; got != want {
			t.Fatalf("String() = %q, want %q", got, want)
		}
	})
}
