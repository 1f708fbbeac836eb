package otlp

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestValidateReportsBadFieldsByName(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	pki := newTestPKI(t)
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"a missing endpoint is an error", Config{Insecure: true}, "Endpoint:"},
		{"an endpoint with a scheme is an error", Config{Endpoint: "http://collector:4317", Insecure: true}, "Endpoint:"},
		{"an endpoint without port is an error", Config{Endpoint: "collector", Insecure: true}, "Endpoint:"},
		{"an endpoint with a bad port is an error", Config{Endpoint: "collector:99999", Insecure: true}, "Endpoint:"},
		{"an endpoint without host is an error", Config{Endpoint: ":4317", Insecure: true}, "Endpoint:"},
		{"a CA file with plaintext is an error", Config{Endpoint: "c:4317", Insecure: true, CAFile: pki.CAFile}, "CAFile:"},
		{"a server name with plaintext is an error", Config{Endpoint: "c:4317", Insecure: true, ServerName: "c"}, "ServerName:"},
		{"a missing CA file is an error", Config{Endpoint: "c:4317", CAFile: "/nonexistent/ca.pem"}, "CAFile:"},
		{"a CA file without certificates is an error", Config{Endpoint: "c:4317", CAFile: notPEM}, "CAFile:"},
		{"a key without certificate is an error", Config{Endpoint: "c:4317", KeyFile: pki.ClientKey}, "CertFile:"},
		{"a certificate without key is an error", Config{Endpoint: "c:4317", CertFile: pki.ClientCert}, "KeyFile:"},
		{"a key that does not match is an error", Config{Endpoint: "c:4317", CertFile: pki.ClientCert, KeyFile: pki.ServerKey}, "CertFile:"},
		{"an unreadable key file is an error", Config{Endpoint: "c:4317", CertFile: pki.ClientCert, KeyFile: "/nonexistent/key"}, "KeyFile:"},
		{"a reserved header is an error", Config{Endpoint: "c:4317", Insecure: true, Headers: map[string]string{"grpc-timeout": "1"}}, "Headers:"},
		{"a header with a space in its key is an error", Config{Endpoint: "c:4317", Insecure: true, Headers: map[string]string{"x api": "1"}}, "Headers:"},
		{"a header value with a newline is an error", Config{Endpoint: "c:4317", Insecure: true, Headers: map[string]string{"x-api": "a\nb"}}, "Headers:"},
		{"two headers differing in case are an error", Config{Endpoint: "c:4317", Insecure: true, Headers: map[string]string{"X-A": "1", "x-a": "2"}}, "Headers:"},
		{"an unknown compression is an error", Config{Endpoint: "c:4317", Insecure: true, Compression: "zstd"}, "Compression:"},
		{"a negative timeout is an error", Config{Endpoint: "c:4317", Insecure: true, Timeout: -1}, "Timeout:"},
		{"a negative max elapsed is an error", Config{Endpoint: "c:4317", Insecure: true, MaxElapsed: -time.Second}, "MaxElapsed:"},
		{"a max delay below the base delay is an error", Config{Endpoint: "c:4317", Insecure: true, RetryBaseDelay: time.Second, RetryMaxDelay: time.Millisecond}, "RetryMaxDelay:"},
		{"a tiny request limit is an error", Config{Endpoint: "c:4317", Insecure: true, MaxRequestBytes: 100}, "MaxRequestBytes:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
		})
	}
}

func TestValidateNamesEveryBadField(t *testing.T) {
	c := Config{Compression: "brotli", Timeout: -1, MaxElapsed: -1, KeyFile: "/k"}
	err := c.Validate()
	for _, field := range []string{"Endpoint:", "Compression:", "Timeout:", "MaxElapsed:", "CertFile:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("err = %v, want it to name %s", err, field)
		}
	}
}

func TestValidateNeverQuotesAHeaderValue(t *testing.T) {
	c := Config{Endpoint: "c:4317", Insecure: true, Headers: map[string]string{"authorization": "s3cr3t\x00"}}
	err := c.Validate()
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Fatalf("err = %v, want an error without the value", err)
	}
}

func TestBuildAppliesDefaults(t *testing.T) {
	c := Config{Endpoint: "collector.observability:4317", Headers: map[string]string{"X-Tenant": "a"}}
	if err := c.build(); err != nil {
		t.Fatal(err)
	}
	if c.Timeout != DefaultTimeout || c.MaxElapsed != DefaultMaxElapsed || c.RetryBaseDelay != DefaultRetryBaseDelay ||
		c.RetryMaxDelay != DefaultRetryMaxDelay || c.MaxRequestBytes != DefaultMaxRequestBytes || c.Compression != CompressionNone || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
	if c.tls == nil || c.tls.RootCAs != nil || c.tls.MinVersion == 0 {
		t.Errorf("TLS with system roots expected by default, got %+v", c.tls)
	}
	if c.Headers["x-tenant"] != "a" || len(c.Headers) != 1 {
		t.Errorf("header keys not lower-cased: %v", c.Headers)
	}
}
