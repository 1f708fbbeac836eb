package local

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/storage"
)

func TestLoadRejectsBadFilesNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		want       []string
	}{
		{"a misspelt top-level field is named", "bad-unknown-field.yaml", []string{"profileType: unknown field (want one of cpuProfileDurationSeconds, limits, onDemand, profileTypes, storage, targets)"}},
		{"a misspelt target field is named", "bad-unknown-nested-field.yaml", []string{"targets[0].lables: unknown field (want one of labels, name, service, url)"}},
		{"a misspelt nested storage field is named", "bad-unknown-storage-field.yaml", []string{"storage.local.dir: unknown field (want one of path)"}},
		{"a duplicate key is rejected with both lines", "bad-duplicate-key.yaml", []string{"line 5: field cpuProfileDurationSeconds: already set at line 4"}},
		{"a value of the wrong type is named with its line", "bad-wrong-type.yaml", []string{`line 4: field cpuProfileDurationSeconds: cannot unmarshal "ten" into an integer`}},
		{"a URL without a scheme names the target index", "bad-url.yaml", []string{"targets[1].url: must be an http(s) URL"}},
		{"an unknown profile type names its index", "bad-profile-type.yaml", []string{`profileTypes[0]: unknown profile type "cpux"`}},
		{"a CPU profile too long for the interval is rejected", "bad-interval.yaml",
			[]string{"cpuProfileDurationSeconds: must be at most onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 = 23 so rounds of one target never overlap, got 30 (omit it to get min(30, that bound), or make onDemand.intervalSeconds >= 39)"}},
		{"storage.local with storage.s3 is rejected", "bad-local-and-s3.yaml", []string{"storage: set at most one of storage.local and storage.s3"}},
		{"a duplicate target name is rejected", "bad-duplicate-names.yaml", []string{`targets[1].name: duplicate name "app" (also targets[0])`}},
		{"a file without targets is rejected", "bad-no-targets.yaml", []string{"targets: at least one target is required"}},
		{"an unknown key template placeholder is named", "bad-key-template.yaml", []string{"storage.keyTemplate:", "unknown placeholder {typo}"}},
		{"every bad limit is reported, not only the first", "bad-limits.yaml",
			[]string{"limits.maxConcurrent: must be from 1 to 64, got 100", "limits.maxProfileBytes:", "limits.requestTimeoutSeconds:"}},
		{"a missing file says it could not be opened", "does-not-exist.yaml", []string{"open config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tc.file))
			if err == nil {
				t.Fatalf("Load(%s) succeeded, want an error", tc.file)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Load(%s) error = %q, want it to contain %q", tc.file, err, w)
				}
			}
		})
	}
}

func TestTypeMismatchesNameTheLineAndTheField(t *testing.T) {
	const target = "targets:\n  - name: app\n    url: http://127.0.0.1:6060/debug/pprof\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"a word for an integer", target + "onDemand:\n  intervalSeconds: abc\n",
			`line 5: field onDemand.intervalSeconds: cannot unmarshal "abc" into an integer`},
		{"a fraction for an integer", target + "cpuProfileDurationSeconds: 1.5\n",
			`line 4: field cpuProfileDurationSeconds: cannot unmarshal "1.5" into an integer`},
		{"a number too large for its field", target + "limits: {maxProfileBytes: 99999999999999999999}\n",
			`line 4: field limits.maxProfileBytes: cannot unmarshal "99999999999999999999" into an integer`},
		{"a word for a boolean", target + "onDemand: {enabled: sometimes}\n",
			`line 4: field onDemand.enabled: cannot unmarshal "sometimes" into a boolean (true or false)`},
		{"a string for a list", target + "profileTypes: cpu\n",
			`line 4: field profileTypes: cannot unmarshal "cpu" into a list`},
		{"a list for a string", "targets:\n  - name: [a, b]\n    url: http://x/debug/pprof\n",
			`line 2: field targets[0].name: cannot unmarshal a list into a string`},
		{"a list for a mapping of fields", target + "storage: [a]\n",
			`line 4: field storage: cannot unmarshal a list into a mapping of fields`},
		{"a mapping for a label value", target[:len(target)-1] + "\n    labels: {env: {a: b}}\n",
			`line 4: field targets[0].labels["env"]: cannot unmarshal a mapping into a string`},
		{"a list as the whole file", "- a\n", `line 1: the config file must be a mapping of fields, got a list`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error = %q\nwant it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "Go struct field") || strings.Contains(err.Error(), "json:") {
				t.Errorf("error = %q leaks the decoder's Go types", err)
			}
		})
	}
	t.Run("a number for a string field is taken as its text", func(t *testing.T) {
		c, err := Parse([]byte("targets:\n  - name: 123\n    url: http://127.0.0.1:6060/debug/pprof\n    labels: {version: 2}\n"))
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if c.Targets[0].Name != "123" || c.Targets[0].Labels["version"] != "2" {
			t.Errorf("name %q, labels %v; want 123 and version 2", c.Targets[0].Name, c.Targets[0].Labels)
		}
	})
}

func TestLoadAcceptsGoodFiles(t *testing.T) {
	enabled := true
	for _, tc := range []struct {
		name, file string
		check      func(t *testing.T, c Config)
	}{
		{"a full file keeps every value it sets", "good.yaml", func(t *testing.T, c Config) {
			want := Config{
				Targets: []TargetConfig{
					{Name: "sample-app", URL: "http://127.0.0.1:6060/debug/pprof", Labels: map[string]string{"service": "sample-app", "env": "dev"}, Service: "sample-app"},
					{Name: "api", URL: "https://api.example.internal:8443/debug/pprof/", Labels: map[string]string{"service": "api"}},
				},
				ProfileTypes:              []string{"cpu", "heap", "goroutine"},
				CPUProfileDurationSeconds: 10,
				OnDemand:                  OnDemandConfig{Enabled: &enabled, IntervalSeconds: 60},
				Storage:                   StorageConfig{Local: LocalStorageConfig{Path: "./profiles"}, KeyTemplate: "{prefix}/{service}/{type}/{timestamp}.pb.gz", Prefix: "dev"},
				Limits:                    LimitsConfig{MaxConcurrent: 4, MaxProfileBytes: 64 << 20, RequestTimeoutSeconds: 30},
			}
			if !reflect.DeepEqual(c, want) {
				t.Fatalf("Load = %+v\nwant %+v", c, want)
			}
		}},
		{"a minimal file gets the documented defaults", "minimal.yaml", func(t *testing.T, c Config) {
			if got := c.Types(); !reflect.DeepEqual(got, []capture.ProfileType{capture.TypeCPU, capture.TypeHeap}) {
				t.Errorf("Types() = %v, want [cpu heap]", got)
			}
			if c.CPUDuration() != 30*time.Second || c.Interval() != 60*time.Second {
				t.Errorf("CPUDuration, Interval = %s, %s; want 30s, 1m0s", c.CPUDuration(), c.Interval())
			}
			if c.Storage.Local.Path != "./profiles" || c.Storage.KeyTemplate != storage.DefaultKeyTemplate {
				t.Errorf("Storage = %+v, want path ./profiles and the default key template", c.Storage)
			}
			if c.Limits != (LimitsConfig{MaxConcurrent: 4, MaxProfileBytes: 64 << 20, RequestTimeoutSeconds: 30}) {
				t.Errorf("Limits = %+v, want the defaults", c.Limits)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatalf("Load(%s): %v", tc.file, err)
			}
			tc.check(t, c)
		})
	}
}

func TestTheCPUProfileLengthAndTheIntervalFollowEachOther(t *testing.T) {
	const target = "targets: [{name: app, url: http://127.0.0.1:6060/debug/pprof}]\n"
	for _, tc := range []struct {
		name, yaml    string
		cpu, interval int
	}{
		{"the seed's config (CPU and heap every 30 s) gets a 22 s CPU profile",
			"onDemand: {enabled: true, intervalSeconds: 30}\nprofileTypes: [cpu, heap]\n", 22, 30},
		{"the default interval keeps the 30 s CPU profile", "", 30, 60},
		{"an interval of 39 s is the first to keep 30 s", "onDemand: {intervalSeconds: 39}\n", 30, 39},
		{"a long CPU profile without an interval gets an interval that fits it", "cpuProfileDurationSeconds: 60\n", 60, 73},
		{"a short CPU profile keeps the default interval", "cpuProfileDurationSeconds: 5\n", 5, 60},
		{"without a schedule the CPU profile is 30 s", "onDemand: {enabled: false, intervalSeconds: 5}\n", 30, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(target + tc.yaml))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if c.CPUProfileDurationSeconds != tc.cpu || c.OnDemand.IntervalSeconds != tc.interval {
				t.Errorf("cpuProfileDurationSeconds, onDemand.intervalSeconds = %d, %d; want %d, %d",
					c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds, tc.cpu, tc.interval)
			}
		})
	}
}

func TestDefaultConfigTargetsTheLocalSampleApp(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatalf("Default(): %v", err)
	}
	if len(c.Targets) != 1 || c.Targets[0].URL != "http://127.0.0.1:6060/debug/pprof" {
		t.Errorf("Targets = %+v, want the sample app on 127.0.0.1:6060", c.Targets)
	}
	wantTypes := []capture.ProfileType{capture.TypeCPU, capture.TypeHeap, capture.TypeGoroutine, capture.TypeAllocs}
	if !reflect.DeepEqual(c.Types(), wantTypes) {
		t.Errorf("Types() = %v, want %v", c.Types(), wantTypes)
	}
	if c.CPUDuration() != 10*time.Second || c.Interval() != 30*time.Second || c.Storage.Local.Path != "./profiles" {
		t.Errorf("cpu %s, interval %s, path %q; want 10s, 30s, ./profiles", c.CPUDuration(), c.Interval(), c.Storage.Local.Path)
	}
}

func TestValidateRules(t *testing.T) {
	valid := func() Config {
		c := Config{Targets: []TargetConfig{{Name: "a", URL: "http://127.0.0.1:1/debug/pprof"}}}
		c.SetDefaults()
		return c
	}
	disabled := false
	for _, tc := range []struct {
		name    string
		mutate  func(c *Config)
		wantErr string // empty: valid
	}{
		{"local mode accepts a seven second interval for a one second CPU profile", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 1, 7
		}, ""},
		{"a six second interval is too short for any CPU profile", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 1, 6
		}, "onDemand.intervalSeconds: must be >= 7 to profile cpu"},
		{"a CPU profile of exactly the bound is accepted", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 22, 30
		}, ""},
		{"a CPU profile one second over the bound is rejected", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 23, 30
		}, "cpuProfileDurationSeconds: must be at most onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 = 22"},
		{"without cpu profiles the interval need not cover the cpu profile duration", func(c *Config) {
			c.ProfileTypes, c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = []string{"heap", "goroutine"}, 30, 5
		}, ""},
		{"with cpu profiles the interval must cover the cpu profile duration", func(c *Config) {
			c.ProfileTypes, c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = []string{"heap", "cpu"}, 30, 5
		}, "onDemand.intervalSeconds: must be >= 7 to profile cpu (a CPU profile must end 5 s before the earliest next round, at intervalSeconds - ceil(intervalSeconds/10)), got 5"},
		{"an interval under five seconds is rejected", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 1, 4
		}, "onDemand.intervalSeconds: must be >= 5, got 4"},
		{"a disabled schedule does not check the interval", func(c *Config) {
			c.OnDemand = OnDemandConfig{Enabled: &disabled, IntervalSeconds: 1}
		}, ""},
		{"a duplicate profile type is rejected", func(c *Config) { c.ProfileTypes = []string{"heap", "cpu", "heap"} },
			`profileTypes[2]: duplicate "heap" (also profileTypes[0])`},
		{"a target without a name is rejected", func(c *Config) { c.Targets[0].Name = " " }, "targets[0].name: is required"},
		{"a URL with credentials is rejected without echoing them", func(c *Config) {
			c.Targets[0].URL = "http://user:secret@127.0.0.1:1/debug/pprof"
		}, "targets[0].url: must not contain credentials"},
		{"a CPU profile over ten minutes is rejected", func(c *Config) {
			c.CPUProfileDurationSeconds, c.OnDemand.IntervalSeconds = 601, 700
		}, "cpuProfileDurationSeconds: must be from 1 to 600, got 601"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.mutate(&c)
			err := c.Validate()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.wantErr)
			case tc.wantErr != "" && strings.Contains(err.Error(), "secret"):
				t.Fatalf("Validate() = %v, leaks the URL's password", err)
			}
		})
	}
}

func TestNormalizeBaseURL(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"a prefix without a trailing slash is kept", "http://127.0.0.1:6060/debug/pprof", "http://127.0.0.1:6060/debug/pprof"},
		{"a trailing slash is dropped", "http://127.0.0.1:6060/debug/pprof/", "http://127.0.0.1:6060/debug/pprof"},
		{"an https URL is accepted", "https://h.example:8443/x/debug/pprof", "https://h.example:8443/x/debug/pprof"},
		{"an IPv6 host is kept bracketed", "http://[fd00::1]:6060/debug/pprof/", "http://[fd00::1]:6060/debug/pprof"},
		{"a non-http scheme is rejected", "ftp://h/debug/pprof", ""},
		{"a bare host:port is rejected", "127.0.0.1:6060", ""},
		{"a query is rejected", "http://h/debug/pprof?seconds=1", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeBaseURL(tc.in)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("NormalizeBaseURL(%q) = %q, want an error", tc.in, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("NormalizeBaseURL(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}
