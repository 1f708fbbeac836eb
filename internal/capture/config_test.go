package capture

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/storage"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr []string
		check   func(t *testing.T, c Config)
	}{
		{
			name: "the zero config gets every default",
			check: func(t *testing.T, c Config) {
				if c.MaxConcurrent != 16 || c.MaxProfileBytes != 64<<20 || c.MaxDecompressedBytes != 256<<20 ||
					c.RequestTimeout != 30*time.Second || c.StoreTimeout != time.Minute || c.Jitter != 0.1 || c.HTTPClient == nil {
					t.Errorf("defaults = %+v", c)
				}
			},
		},
		{
			name: "a profile limit above the default decompressed limit raises the decompressed limit",
			cfg:  Config{MaxProfileBytes: 512 << 20},
			check: func(t *testing.T, c Config) {
				if c.MaxDecompressedBytes != 512<<20 {
					t.Errorf("MaxDecompressedBytes = %d, want %d", c.MaxDecompressedBytes, 512<<20)
				}
			},
		},
		{name: "a negative MaxConcurrent is rejected by name", cfg: Config{MaxConcurrent: -1}, wantErr: []string{"MaxConcurrent"}},
		{name: "a negative MaxProfileBytes is rejected by name", cfg: Config{MaxProfileBytes: -5}, wantErr: []string{"MaxProfileBytes"}},
		{name: "a decompressed limit below the profile limit is rejected by name", cfg: Config{MaxProfileBytes: 10, MaxDecompressedBytes: 5}, wantErr: []string{"MaxDecompressedBytes"}},
		{name: "a negative RequestTimeout is rejected by name", cfg: Config{RequestTimeout: -time.Second}, wantErr: []string{"RequestTimeout"}},
		{name: "a negative StoreTimeout is rejected by name", cfg: Config{StoreTimeout: -time.Second}, wantErr: []string{"StoreTimeout"}},
		{name: "a Jitter of 1 is rejected by name", cfg: Config{Jitter: 1}, wantErr: []string{"Jitter"}},
		{name: "a negative Jitter is rejected by name", cfg: Config{Jitter: -0.1}, wantErr: []string{"Jitter"}},
		{name: "a NaN Jitter is rejected by name", cfg: Config{Jitter: math.NaN()}, wantErr: []string{"Jitter"}},
		{
			name:    "several bad fields are all named",
			cfg:     Config{MaxConcurrent: -1, Jitter: 2},
			wantErr: []string{"MaxConcurrent", "Jitter"},
		},
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
				t.Fatal("Validate() = nil, want an error")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %q, want it to name %s", err, want)
				}
			}
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted a config that Validate rejects")
			}
		})
	}
}

func TestPolicyValidate(t *testing.T) {
	store := &memStore{}
	tests := []struct {
		name    string
		policy  Policy
		wantErr string
	}{
		{name: "a policy with types and a store is valid", policy: Policy{Types: AllTypes, Store: store, Interval: time.Minute}},
		{name: "a policy without types is rejected", policy: Policy{Store: store}, wantErr: "Types is empty"},
		{name: "an unknown type is rejected", policy: Policy{Types: []ProfileType{"cpu", "wall"}, Store: store}, wantErr: `unknown profile type "wall"`},
		{name: "a repeated type is rejected", policy: Policy{Types: []ProfileType{"heap", "heap"}, Store: store}, wantErr: "heap listed twice"},
		{name: "a policy without a store is rejected", policy: Policy{Types: []ProfileType{"heap"}}, wantErr: "Store is required"},
		{name: "a negative CPU duration is rejected", policy: Policy{Types: []ProfileType{"cpu"}, Store: store, CPUDuration: -time.Second}, wantErr: "CPUDuration"},
		{name: "a negative interval is rejected", policy: Policy{Types: []ProfileType{"heap"}, Store: store, Interval: -time.Second}, wantErr: "Interval"},
		{name: "a tiny interval is rejected", policy: Policy{Types: []ProfileType{"heap"}, Store: store, Interval: time.Millisecond}, wantErr: "at least 10ms"},
		{name: "a bad key template is rejected", policy: Policy{Types: []ProfileType{"heap"}, Store: store, KeyTemplate: "{pod}/{type}"}, wantErr: "KeyTemplate"},
		{name: "a valid key template is accepted", policy: Policy{Types: []ProfileType{"heap"}, Store: store, KeyTemplate: "{pod}/{unix}-{type}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestTargetName(t *testing.T) {
	tests := []struct {
		name   string
		target Target
		want   string
	}{
		{name: "the target name wins", target: Target{ID: "uid", Meta: storage.Meta{Target: "local-app", Namespace: "ns", Pod: "p"}}, want: "local-app"},
		{name: "namespace and pod come next", target: Target{ID: "uid", Meta: storage.Meta{Namespace: "ns", Pod: "p"}}, want: "ns/p"},
		{name: "a pod alone is used", target: Target{ID: "uid", Meta: storage.Meta{Pod: "p"}}, want: "p"},
		{name: "the ID is the fallback", target: Target{ID: "uid"}, want: "uid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.target.Name(); got != tt.want {
				t.Errorf("Name() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewMetricsRefusesADuplicateRegistration(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := NewMetrics(reg); err != nil {
		t.Fatalf("first NewMetrics: %v", err)
	}
	if _, err := NewMetrics(reg); err == nil || !strings.Contains(err.Error(), "register capture metrics") {
		t.Fatalf("second NewMetrics on the same registry = %v, want a registration error", err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
	}
	// Vectors without observations are not gathered; the gauge always is.
	if !names["kprof_captures_in_flight"] {
		t.Errorf("gathered %v, want kprof_captures_in_flight among them", names)
	}
}
