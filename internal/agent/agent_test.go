package agent

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent/router"
)

func TestConfigValidateNamesEachBadField(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"no config dir is an error", Config{}, []string{"ConfigDir: required"}},
		{"perf.data needs a directory", Config{ConfigDir: "d", EnablePerfData: true},
			[]string{"PerfDataPath: required with EnablePerfData"}},
		{"pprof files need a directory", Config{ConfigDir: "d", EnablePprofFiles: true},
			[]string{"PprofFilesPath: required with EnablePprofFiles"}},
		{"OTLP needs an endpoint", Config{ConfigDir: "d", EnableOTLP: true},
			[]string{"OTLP.Endpoint: required with EnableOTLP"}},
		{"a kubeconfig with no cluster is a contradiction", Config{ConfigDir: "d", NoCluster: true, Kubeconfig: "k"},
			[]string{"Kubeconfig:"}},
		{"a negative collector timeout is an error", Config{ConfigDir: "d", CollectorTimeout: -1}, []string{"CollectorTimeout:"}},
		{"a nil consumer is an error", Config{ConfigDir: "d", Consumers: make([]router.Consumer, 1)}, []string{"Consumers[0]: nil"}},
		{"a nil metrics consumer is an error", Config{ConfigDir: "d", MetricsConsumers: make([]router.MetricsConsumer, 1)},
			[]string{"MetricsConsumers[0]: nil"}},
		{"perf.data retention bounds must not be negative", Config{ConfigDir: "d", PerfDataMaxFiles: -1, PerfDataMaxBytes: -1},
			[]string{"PerfDataMaxFiles: must not be negative, got -1", "PerfDataMaxBytes: must not be negative, got -1"}},
		{"the recorder's window and bound must not be negative", Config{ConfigDir: "d", RecorderWindow: -1, RecorderMaxBytes: -1},
			[]string{"RecorderWindow: must not be negative", "RecorderMaxBytes: must not be negative, got -1"}},
		{"usage cannot be read more often than every 100ms", Config{ConfigDir: "d", UsageInterval: time.Millisecond},
			[]string{"UsageInterval: must be at least 100ms"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate returned nil")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	t.Run("defaults are applied", func(t *testing.T) {
		c := Config{ConfigDir: "d", EnableDebug: true}
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Fatal(err)
		}
		if c.NodeName == "" || c.ProcRoot != DefaultProcRoot || c.MetricsAddr != DefaultMetricsAddr ||
			c.HealthAddr != DefaultHealthAddr || c.DebugOut == nil || c.Logger == nil || c.Registry == nil ||
			c.PerfDataMaxFiles != DefaultPerfDataMaxFiles || c.PerfDataMaxBytes != DefaultPerfDataMaxBytes {
			t.Errorf("defaults not applied: %+v", c)
		}
		if c.RecorderWindow != 0 || c.RecorderAddr != "" || c.RecorderMaxBytes != DefaultRecorderMaxBytes {
			t.Errorf("recorder defaults: window %s, address %q, max bytes %d; want none, none, %d", c.RecorderWindow, c.RecorderAddr, c.RecorderMaxBytes, DefaultRecorderMaxBytes)
		}
		c = Config{ConfigDir: "d", RecorderWindow: time.Second}
		c.SetDefaults()
		if err := c.Validate(); err != nil || c.RecorderAddr != DefaultRecorderAddr {
			t.Errorf("a recorder without an address: %q, %v; want %q", c.RecorderAddr, err, DefaultRecorderAddr)
		}
	})
}

func TestShutdownWithoutStart(t *testing.T) {
	a, err := New(Config{ConfigDir: t.TempDir(), NoCluster: true, MetricsAddr: "0", HealthAddr: "0"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := a.Shutdown(context.Background()); err != nil {
			t.Fatalf("shutdown without start: %v", err)
		}
	}
	if err := a.Start(context.Background()); err == nil {
		t.Fatal("start after shutdown succeeded")
	}
}
