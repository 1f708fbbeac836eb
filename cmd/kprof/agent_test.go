package main

import (
	"strings"
	"testing"
)

func TestAgentRefusesConsumersNotBuiltYet(t *testing.T) {
	cases := []struct{ flag, want string }{
		{"--enable-profiling-perfdata", "the perf.data consumer is not part of this build yet"},
		{"--enable-profiling-datadog", "the Datadog consumer is not part of this build yet"},
		{"--enable-profiling-otlp", "the OTLP consumer is not part of this build yet"},
	}
	for _, tc := range cases {
		t.Run(tc.flag+" fails at startup with a clear message", func(t *testing.T) {
			_, _, err := execute(t, newAgentCmd(), "--config-dir", t.TempDir(), "--no-cluster",
				"--metrics-bind-address", "0", "--health-probe-bind-address", "0", tc.flag)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof agent %s: error %v, want one saying %q", tc.flag, err, tc.want)
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
