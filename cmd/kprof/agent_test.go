package main

import (
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/agent"
	"github.com/kprof/kprof/internal/agent/collection"
)

func TestAgentRefusesBadConsumerSettings(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		want  string
	}{
		{"OTLP without an endpoint", []string{"--enable-profiling-otlp"}, "OTLP.Endpoint: required"},
		{"OTLP with a bad compression", []string{"--enable-profiling-otlp", "--otlp-endpoint", "127.0.0.1:4317", "--otlp-compression", "zstd"}, "Compression"},
		{"Datadog with both an agent URL and a site", []string{"--enable-profiling-datadog", "--datadog-site", "datadoghq.com",
			"--datadog-agent-url", "http://127.0.0.1:8126/profiling/v1/input"}, "AgentURL"},
		{"perf.data without a directory", []string{"--enable-profiling-perfdata", "--profiling-perfdata-path", ""}, "PerfDataPath"},
		{"a negative recorder window", []string{"--recorder-window", "-1s"}, "RecorderWindow: must not be negative"},
		{"a negative recorder bound", []string{"--recorder-max-bytes", "-1"}, "RecorderMaxBytes: must not be negative"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails at startup naming the problem", func(t *testing.T) {
			args := append([]string{"--config-dir", t.TempDir(), "--no-cluster",
				"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--recorder-bind-address", "0"}, tc.flags...)
			_, _, err := execute(t, newAgentCmd(), args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof agent %v: error %v, want one saying %q", tc.flags, err, tc.want)
			}
		})
	}
}

func TestAgentRejectsABadLogLevel(t *testing.T) {
	_, _, err := execute(t, newAgentCmd(), "--config-dir", t.TempDir(), "--log-level", "loud")
	if err == nil || !strings.Contains(err.Error(), "--log-level") {
		t.Fatalf("error %v, want one naming --log-level", err)
	}
}

func TestOTLPHeadersFromTheStandardVariable(t *testing.T) {
	var cfg agent.Config
	cfg.OTLP.Headers = map[string]string{"x-tenant": "from-flag"}
	if err := otlpHeadersFromEnv(&cfg, "authorization=Bearer%20s3cret, x-tenant=from-env ,x-empty="); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"authorization": "Bearer s3cret", "x-tenant": "from-flag", "x-empty": ""}
	if !maps.Equal(map[string]string(cfg.OTLP.Headers), want) {
		t.Fatalf("headers %v, want %v", map[string]string(cfg.OTLP.Headers), want)
	}
	for _, bad := range []string{"novalue", "=v", "k=%zz"} {
		err := otlpHeadersFromEnv(&agent.Config{}, "authorization=s3cret,"+bad)
		if err == nil || !strings.Contains(err.Error(), "OTEL_EXPORTER_OTLP_HEADERS") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error %v, want one naming the variable and not the values", bad, err)
		}
	}
}

func TestAgentPrintsTheEmbeddedDefaultConfig(t *testing.T) {
	out, _, err := execute(t, newAgentCmd(), "--print-default-config")
	if err != nil {
		t.Fatal(err)
	}
	c, err := collection.ParseFile("printed", []byte(out))
	if err != nil {
		t.Fatalf("the printed default does not parse as a config: %v\n%s", err, out)
	}
	if d := collection.Default(); c.Name != d.Name || c.Event != "cpu-clock" || c.Frequency != 19 || c.Interval != 10*time.Second {
		t.Errorf("printed default %+v, want %s: cpu-clock at 19 Hz every 10s", c, d.Name)
	}
}

func TestAgentRefusesNegativePerfDataRetention(t *testing.T) {
	for flag, field := range map[string]string{
		"--profiling-perfdata-max-files": "PerfDataMaxFiles",
		"--profiling-perfdata-max-bytes": "PerfDataMaxBytes",
	} {
		_, _, err := execute(t, newAgentCmd(), "--config-dir", t.TempDir(), "--no-cluster",
			"--metrics-bind-address", "0", "--health-probe-bind-address", "0", flag, "-1")
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("kprof agent %s -1: error %v, want one naming %s", flag, err, field)
		}
	}
}

func TestAgentWithoutAClusterOpensNoRecorderPortUnlessAsked(t *testing.T) {
	cases := []struct {
		args       []string
		wantWindow time.Duration
		wantAddr   string
	}{
		{[]string{"--no-cluster"}, 0, "0"},
		{[]string{"--no-cluster", "--recorder-bind-address", "127.0.0.1:19092"}, 0, "127.0.0.1:19092"},
		{[]string{"--no-cluster", "--recorder-window", "1m"}, time.Minute, "0"},
		{nil, agent.DefaultRecorderWindow, agent.DefaultRecorderAddr},
	}
	for _, tc := range cases {
		cmd := newAgentCmd()
		f := cmd.Flags()
		if err := f.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		var cfg agent.Config
		var err error
		if cfg.NoCluster, err = f.GetBool("no-cluster"); err != nil {
			t.Fatal(err)
		}
		if cfg.RecorderWindow, err = f.GetDuration("recorder-window"); err != nil {
			t.Fatal(err)
		}
		if cfg.RecorderAddr, err = f.GetString("recorder-bind-address"); err != nil {
			t.Fatal(err)
		}
		recorderOffWithoutCluster(cmd, &cfg)
		if cfg.RecorderWindow != tc.wantWindow || cfg.RecorderAddr != tc.wantAddr {
			t.Errorf("kprof agent %v: recorder window %s at %q, want %s at %q", tc.args, cfg.RecorderWindow, cfg.RecorderAddr, tc.wantWindow, tc.wantAddr)
		}
	}
}
