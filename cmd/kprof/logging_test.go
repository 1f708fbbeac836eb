package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLoggingFlags(t *testing.T) {
	t.Run("run and capture log JSON lines when stderr is not a terminal, durations as strings", func(t *testing.T) {
		base := startSampleApp(t)
		_, stderr, err := execute(t, newCaptureCmd(), base, "--type", "goroutine", "--output", t.TempDir())
		if err != nil {
			t.Fatalf("kprof capture: %v\n%s", err, stderr)
		}
		var stored map[string]any
		for line := range strings.Lines(stderr) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("stderr line is not JSON: %v\n%q", err, line)
			}
			if m["msg"] == "stored profile" {
				stored = m
			}
		}
		if took, _ := stored["took"].(string); !strings.HasSuffix(took, "s") {
			t.Errorf("stored profile line %v, want took as a duration string", stored)
		}
	})
	t.Run("--log-format text and --log-level warn apply to every subcommand", func(t *testing.T) {
		base := startSampleApp(t)
		_, stderr, err := execute(t, newCaptureCmd(), base, "--type", "goroutine", "--output", t.TempDir(), "--log-format", "text", "--log-level", "warn")
		if err != nil {
			t.Fatalf("kprof capture: %v\n%s", err, stderr)
		}
		if strings.Contains(stderr, "level=INFO") || strings.Contains(stderr, "{") {
			t.Errorf("stderr has info lines or JSON at --log-level warn --log-format text:\n%s", stderr)
		}
	})
	t.Run("--verbose still means debug", func(t *testing.T) {
		base := startSampleApp(t)
		_, stderr, err := execute(t, newCaptureCmd(), base, "--type", "goroutine", "--output", t.TempDir(), "--verbose")
		if err != nil {
			t.Fatalf("kprof capture: %v\n%s", err, stderr)
		}
		if !strings.Contains(stderr, `"level":"DEBUG"`) {
			t.Errorf("no debug line with --verbose:\n%s", stderr)
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a bad --log-level is named", []string{"--log-level", "loud"}, `--log-level: want debug, info, warn or error, got "loud"`},
		{"a bad --log-format is named", []string{"--log-format", "xml"}, `--log-format: want auto, text or json, got "xml"`},
		{"a bad --zap-log-level of the operator is named", []string{"--zap-log-level", "loud"}, `--zap-log-level: want debug, info, warn, error or a verbosity above 0, got "loud"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newOperatorCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof operator %v: error %v, want one containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestZapLevelMapsOntoLogLevel(t *testing.T) {
	for in, want := range map[string]string{"debug": "debug", "info": "info", "error": "error", "panic": "error", "2": "debug"} {
		if got, err := zapLevel(in); err != nil || got != want {
			t.Errorf("zapLevel(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
