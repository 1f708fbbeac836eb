package main

import (
	"strings"
	"testing"
)

func TestAgentRefusesBadConsumerSettings(t *testing.T) {
	cases := []struct {
		name  string
		flags []string
		want  string
	}{
		{"the OTLP consumer, not built yet", []string{"--enable-profiling-otlp"}, "the OTLP consumer is not part of this build yet"},
		{"Datadog with both an agent URL and a site", []string{"--enable-profiling-datadog", "--datadog-site", "datadoghq.com",
			"--datadog-agent-url", "http://127.0.0.1:8126/profiling/v1/input"}, "AgentURL"},
		{"perf.data without a directory", []string{"--enable-profiling-perfdata", "--profiling-perfdata-path", ""}, "PerfDataPath"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails at startup naming the problem", func(t *testing.T) {
			args := append([]string{"--config-dir", t.TempDir(), "--no-cluster",
				"--metrics-bind-address", "0", "--health-probe-bind-address", "0"}, tc.flags...)
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
