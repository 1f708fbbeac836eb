package spool

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	remote := newFakeRemote("bucket")
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "a config with only Dir and Remote gets every default",
			cfg:  Config{Dir: "spool", Remote: remote},
			check: func(t *testing.T, c Config) {
				if !filepath.IsAbs(c.Dir) || c.MaxBytes != 1<<30 || c.MaxAge != 24*time.Hour || c.Workers != 2 ||
					c.MinBackoff != time.Second || c.MaxBackoff != 5*time.Minute || c.ProbeInterval != time.Minute ||
					c.UploadTimeout != 2*time.Minute || c.Now == nil {
					t.Errorf("defaults = %+v", c)
				}
			},
		},
		{
			name: "a MinBackoff above the default MaxBackoff raises the default",
			cfg:  Config{Dir: "spool", Remote: remote, MinBackoff: 10 * time.Minute},
			check: func(t *testing.T, c Config) {
				if c.MaxBackoff != 10*time.Minute {
					t.Errorf("MaxBackoff = %s, want 10m", c.MaxBackoff)
				}
			},
		},
		{name: "a missing Dir is rejected by name", cfg: Config{Remote: remote}, wantErr: []string{"Dir is required"}},
		{name: "a missing Remote is rejected by name", cfg: Config{Dir: "spool"}, wantErr: []string{"Remote is required"}},
		{name: "a negative MaxBytes is rejected by name", cfg: Config{Dir: "d", Remote: remote, MaxBytes: -1}, wantErr: []string{"MaxBytes"}},
		{name: "a negative MaxAge is rejected by name", cfg: Config{Dir: "d", Remote: remote, MaxAge: -time.Hour}, wantErr: []string{"MaxAge"}},
		{name: "a negative Workers is rejected by name", cfg: Config{Dir: "d", Remote: remote, Workers: -2}, wantErr: []string{"Workers"}},
		{name: "a negative MinBackoff is rejected by name", cfg: Config{Dir: "d", Remote: remote, MinBackoff: -1}, wantErr: []string{"MinBackoff"}},
		{name: "a MaxBackoff below MinBackoff is rejected by name", cfg: Config{Dir: "d", Remote: remote, MinBackoff: time.Minute, MaxBackoff: time.Second}, wantErr: []string{"MaxBackoff: must not be below MinBackoff (1m0s), got 1s"}},
		{name: "a negative ProbeInterval is rejected by name", cfg: Config{Dir: "d", Remote: remote, ProbeInterval: -1}, wantErr: []string{"ProbeInterval"}},
		{name: "a negative UploadTimeout is rejected by name", cfg: Config{Dir: "d", Remote: remote, UploadTimeout: -1}, wantErr: []string{"UploadTimeout"}},
		{name: "several bad fields are all named", cfg: Config{Workers: -1, MaxAge: -1}, wantErr: []string{"Dir", "Remote", "Workers", "MaxAge"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cfg
			c.SetDefaults()
			err := c.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				tt.check(t, c)
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error naming %v", tt.wantErr)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to name %q", err, w)
				}
			}
		})
	}
}

func TestNewRejectsAnInvalidConfig(t *testing.T) {
	if _, err := New(Config{Remote: newFakeRemote("bucket")}); err == nil || !strings.Contains(err.Error(), "Dir is required") {
		t.Errorf("New without Dir = %v, want an error naming Dir", err)
	}
}
