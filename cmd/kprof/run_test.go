package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/kprof/kprof/examples/sample-app/app"
	"github.com/kprof/kprof/internal/local"
)

// execute runs a subcommand in-process and returns its stdout and stderr.
func execute(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	cmd.SilenceErrors = true
	err = cmd.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// startSampleApp serves the sample app with its background load on a loopback port
// and returns its pprof prefix.
func startSampleApp(t *testing.T) string {
	t.Helper()
	a, err := app.New(app.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); a.RunBackgroundLoad(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return srv.URL + "/debug/pprof"
}

func TestRunCommand(t *testing.T) {
	base := startSampleApp(t)
	cfgFile := filepath.Join(t.TempDir(), "kprof.yaml")
	cfg := "targets: [{name: sample-app, url: " + base + "}]\nprofileTypes: [cpu, goroutine]\ncpuProfileDurationSeconds: 1\nstorage: {local: {path: ./never-used}}\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("--once with --output stores below the output directory and prints how to open a profile", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		stdout, stderr, err := execute(t, newRunCmd(), "--config", cfgFile, "--once", "--output", out)
		if err != nil {
			t.Fatalf("kprof run --once: %v\nstderr:\n%s", err, stderr)
		}
		abs, _ := filepath.Abs(out)
		for _, want := range []string{"Stored 2 profile(s)", abs, "go tool pprof -top " + abs} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
		if !strings.Contains(stderr, `msg="stored profile"`) {
			t.Errorf("stderr has no structured log of the stored profiles:\n%s", stderr)
		}
		if _, err := os.Stat("never-used"); err == nil {
			t.Error("storage.local.path was used although --output overrides it")
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--once and --duration together are refused", []string{"--config", cfgFile, "--once", "--duration", "1m"}, "[once duration]"},
		{"an empty --output is refused", []string{"--config", cfgFile, "--once", "--output", ""}, "--output: must not be empty"},
		{"a missing config file is named", []string{"--config", filepath.Join(t.TempDir(), "nope.yaml"), "--once"}, "open config"},
		{"a positional argument is refused", []string{"extra"}, `unknown command "extra"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newRunCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof run %v = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestRunPrintDefaultConfigPrintsTheEmbeddedYAML(t *testing.T) {
	stdout, _, err := execute(t, newRunCmd(), "--print-default-config")
	if err != nil {
		t.Fatalf("kprof run --print-default-config: %v", err)
	}
	if stdout != string(local.DefaultYAML()) {
		t.Fatalf("printed %q, want the embedded default config", stdout)
	}
	if _, err := local.Parse([]byte(stdout)); err != nil {
		t.Fatalf("the printed default config does not parse: %v", err)
	}
}
