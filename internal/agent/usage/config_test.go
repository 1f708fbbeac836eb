package usage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

func TestConfigValidate(t *testing.T) {
	publish := func(*profile.Metrics) {}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cfg       Config
		wantField []string // each must be named in the error; none: valid
	}{
		{"zero values but Publish are defaults", Config{Publish: publish}, nil},
		{"every field set", Config{Root: t.TempDir(), Interval: MinInterval, Publish: publish, Labels: map[string]string{"node": "n"}, MaxCgroups: 1}, nil},
		{"Publish is required", Config{}, []string{"Publish: required"}},
		{"a Root that does not exist", Config{Root: filepath.Join(t.TempDir(), "nope"), Publish: publish}, []string{"Root:"}},
		{"a Root that is a file", Config{Root: file, Publish: publish}, []string{"Root: " + file + " is not a directory"}},
		{"an Interval below the minimum", Config{Interval: 99 * time.Millisecond, Publish: publish}, []string{"Interval: 99ms is below the minimum 100ms"}},
		{"a negative Interval", Config{Interval: -time.Second, Publish: publish}, []string{"Interval: -1s is negative"}},
		{"a negative MaxCgroups", Config{MaxCgroups: -1, Publish: publish}, []string{"MaxCgroups: -1 is negative"}},
		{"a label without name", Config{Labels: map[string]string{"": "x"}, Publish: publish}, []string{"Labels:"}},
		{"every bad field is named at once",
			Config{Root: file, Interval: time.Millisecond, MaxCgroups: -5, Labels: map[string]string{"": ""}},
			[]string{"Root:", "Interval:", "Publish:", "MaxCgroups:", "Labels:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.wantField) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := New(tt.cfg); err != nil {
					t.Fatalf("New() = %v, want a reader", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %q", tt.wantField)
			}
			for _, f := range tt.wantField {
				if !strings.Contains(err.Error(), f) {
					t.Errorf("Validate() = %q, does not name %q", err, f)
				}
			}
			if _, err := New(tt.cfg); err == nil || !strings.HasPrefix(err.Error(), "usage config: ") {
				t.Errorf("New() error = %v, want the validation error", err)
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	r, err := New(Config{Publish: func(*profile.Metrics) {}})
	if err != nil {
		t.Fatal(err)
	}
	if r.cfg.Root != DefaultRoot || r.cfg.Interval != DefaultInterval || r.cfg.MaxCgroups != DefaultMaxCgroups || r.cfg.Logger == nil {
		t.Errorf("config after New = %+v; want Root %s, Interval %s, MaxCgroups %d and a logger", r.cfg, DefaultRoot, DefaultInterval, DefaultMaxCgroups)
	}
}
