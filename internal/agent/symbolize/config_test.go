package symbolize

import (
	"strings"
	"testing"
)

func TestConfigValidateNamesTheBadField(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings of the error; none means valid
	}{
		{name: "the zero config is valid (all defaults)", cfg: Config{}},
		{name: "explicit values are valid", cfg: Config{ProcRoot: "/host/proc", MaxFiles: 1, MaxCacheBytes: 1, MaxFileBytes: 1, MaxProcesses: 1,
			MaxPerfMapBytes: 1, MaxPerfMapEntries: 1, DebugDir: "/host/usr/lib/debug"}},
		{name: "a relative ProcRoot is refused", cfg: Config{ProcRoot: "proc"}, want: []string{"ProcRoot"}},
		{name: "a negative MaxFiles is refused", cfg: Config{MaxFiles: -1}, want: []string{"MaxFiles"}},
		{name: "a negative MaxCacheBytes is refused", cfg: Config{MaxCacheBytes: -1}, want: []string{"MaxCacheBytes"}},
		{name: "a negative MaxFileBytes is refused", cfg: Config{MaxFileBytes: -1}, want: []string{"MaxFileBytes"}},
		{name: "a negative MaxProcesses is refused", cfg: Config{MaxProcesses: -1}, want: []string{"MaxProcesses"}},
		{name: "a negative MaxPerfMapBytes is refused", cfg: Config{MaxPerfMapBytes: -1}, want: []string{"MaxPerfMapBytes"}},
		{name: "a negative MaxPerfMapEntries is refused", cfg: Config{MaxPerfMapEntries: -1}, want: []string{"MaxPerfMapEntries"}},
		{name: "a relative DebugDir is refused", cfg: Config{DebugDir: "usr/lib/debug"}, want: []string{"DebugDir"}},
		{name: "every bad field is named", cfg: Config{MaxFiles: -1, MaxProcesses: -2}, want: []string{"MaxFiles", "MaxProcesses"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v, want nil", err)
				}
				if _, err := New(tc.cfg); err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want an error naming %v", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to name %s", err, w)
				}
			}
			if _, err := New(tc.cfg); err == nil {
				t.Error("New accepted an invalid config")
			}
		})
	}
}

func TestNewFillsDefaults(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	c := s.cfg
	if c.ProcRoot != DefaultProcRoot || c.MaxFiles != DefaultMaxFiles || c.MaxFileBytes != DefaultMaxFileBytes || c.MaxCacheBytes != DefaultMaxCacheBytes || c.MaxProcesses != DefaultMaxProcesses ||
		c.MaxPerfMapBytes != DefaultMaxPerfMapBytes || c.MaxPerfMapEntries != DefaultMaxPerfMapEntries || c.DebugDir != DefaultDebugDir {
		t.Errorf("config after New: %+v", c)
	}
}
