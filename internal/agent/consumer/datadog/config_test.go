package datadog

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateReportsBadFieldsByName(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"a non-http agent URL is an error", Config{Service: "s", AgentURL: "ftp://x"}, "AgentURL:"},
		{"agent URL and site together are an error", Config{Service: "s", AgentURL: "http://a", Site: "datadoghq.com", APIKey: testKey}, "AgentURL:"},
		{"a site with a path is an error", Config{Service: "s", Site: "evil.com/x", APIKey: testKey}, "Site:"},
		{"a site without key is an error", Config{Service: "s", Site: "datadoghq.com"}, "APIKey:"},
		{"a key without site is an error", Config{Service: "s", APIKey: testKey}, "APIKey:"},
		{"a missing key file is an error", Config{Service: "s", Site: "datadoghq.com", APIKeyFile: "/nonexistent/key"}, "APIKeyFile:"},
		{"a tag with a comma is an error", Config{Service: "s", Tags: []string{"a:b,c"}}, "Tags:"},
		{"a negative timeout is an error", Config{Service: "s", Timeout: -1}, "Timeout:"},
		{"too many retries is an error", Config{Service: "s", MaxRetries: 11}, "MaxRetries:"},
		{"a negative queue size is an error", Config{Service: "s", QueueSize: -1}, "QueueSize:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(APIKeyEnv, "")
			err := tt.cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.field) {
				t.Fatalf("err = %v, want one naming %s", err, tt.field)
			}
			if strings.Contains(err.Error(), testKey) {
				t.Errorf("error contains the API key: %v", err)
			}
		})
	}
}

func TestBuildAppliesDefaults(t *testing.T) {
	c := Config{Service: "s"}
	if err := c.build(); err != nil {
		t.Fatal(err)
	}
	if c.url != DefaultAgentURL || c.Timeout != DefaultTimeout || c.MaxRetries != DefaultMaxRetries || c.Family != "native" || c.QueueSize != 16 || c.key() != "" {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestBuildResolvesTheAgentlessKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(file, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		env  string
	}{
		{"the key comes from APIKey", Config{APIKey: testKey}, ""},
		{"the key comes from APIKeyFile", Config{APIKeyFile: file}, ""},
		{"the key comes from DD_API_KEY", Config{}, testKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(APIKeyEnv, tt.env)
			tt.cfg.Service, tt.cfg.Site = "s", "datadoghq.eu"
			if err := tt.cfg.build(); err != nil {
				t.Fatal(err)
			}
			if tt.cfg.key() != testKey || tt.cfg.url != "https://intake.profile.datadoghq.eu/api/v2/profile" {
				t.Errorf("url %q, key resolved %v", tt.cfg.url, tt.cfg.key() == testKey)
			}
		})
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := Config{Service: "s", Site: "datadoghq.com", APIKey: testKey}
	if err := c.build(); err != nil {
		t.Fatal(err)
	}
	if c.key() != testKey {
		t.Fatal("key not resolved")
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("config", "key", c.APIKey, "cfg", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%s %q %v", c.APIKey, c.APIKey, c.APIKey)} {
		if strings.Contains(s, testKey) {
			t.Errorf("formatted config contains the key: %s", s)
		}
	}
	if strings.Contains(logs.String(), testKey) {
		t.Errorf("logged config contains the key: %s", logs.String())
	}
}
