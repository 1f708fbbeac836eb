package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/spf13/cobra"

	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// execute runs a subcommand in-process, below the root command (whose flags set up
// logging), and returns its stdout and stderr.
func execute(t *testing.T, cmd *cobra.Command, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := rootCmd(cmd)
	root.SetArgs(append([]string{cmd.Name()}, args...))
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(t.Context())
	return out.String(), errOut.String(), err
}

// startSampleApp serves the sample app with its background load on a loopback port
// and returns its pprof prefix.
func startSampleApp(t *testing.T) string {
	t.Helper()
	return testenv.ServeSampleApp(t) + "/debug/pprof"
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
		if !strings.Contains(stderr, `"msg":"stored profile"`) {
			t.Errorf("stderr has no structured log of the stored profiles:\n%s", stderr)
		}
		if _, err := os.Stat("never-used"); err == nil {
			t.Error("storage.local.path was used although --output overrides it")
		}
	})

	s3CfgFile := filepath.Join(t.TempDir(), "kprof-s3.yaml")
	s3Cfg := "targets: [{name: sample-app, url: " + base + "}]\nstorage: {s3: {bucket: profiles}}\n"
	if err := os.WriteFile(s3CfgFile, []byte(s3Cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"--output with storage.s3 is refused, naming the bucket", []string{"--config", s3CfgFile, "--once", "--output", "x"},
			"--output: the config file sets storage.s3, so profiles go to s3://profiles"},
		{"a zero --flush-timeout is refused", []string{"--config", cfgFile, "--once", "--flush-timeout", "0s"},
			"--flush-timeout: must be positive, got 0s"},
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

func TestRunCommandWithS3UploadsAndPrintsHowToFetchAProfile(t *testing.T) {
	m := testenv.StartMinIO(t)
	m.CreateBucket(t, "profiles")
	m.UseAsDefaultCredentials(t)
	base := startSampleApp(t)
	spoolDir := filepath.Join(t.TempDir(), "spool")
	cfgFile := filepath.Join(t.TempDir(), "kprof.yaml")
	cfg := "targets: [{name: sample-app, url: " + base + "}]\nprofileTypes: [goroutine]\n" +
		"storage: {s3: {bucket: profiles, endpoint: " + m.Endpoint + "}, spool: {path: " + spoolDir + "}, prefix: cli}\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	stdout, stderr, err := execute(t, newRunCmd(), "--config", cfgFile, "--once", "--flush-timeout", "1m")
	if err != nil {
		t.Fatalf("kprof run --once: %v\nstderr:\n%s", err, stderr)
	}
	for _, want := range []string{
		"Captured 1 profile(s)", "uploaded 1 to s3://profiles/cli (endpoint " + m.Endpoint + ")",
		"aws s3 cp --endpoint-url " + m.Endpoint + " s3://profiles/cli/local/sample-app/",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, `"msg":"uploaded profile"`) {
		t.Errorf("stderr has no structured log of the upload:\n%s", stderr)
	}
	if strings.Contains(stderr, m.SecretKey) || strings.Contains(stdout, m.SecretKey) {
		t.Error("the output shows the secret access key")
	}
	out, err := m.Client().ListObjectsV2(t.Context(), &awss3.ListObjectsV2Input{Bucket: aws.String("profiles")})
	if err != nil {
		t.Fatalf("list the bucket: %v", err)
	}
	var profiles []string
	for _, o := range out.Contents {
		if !storage.IsMarkerKey(*o.Key) { // each profile has an empty index marker beside it
			profiles = append(profiles, *o.Key)
		}
	}
	if len(profiles) != 1 || !strings.HasPrefix(profiles[0], "cli/local/sample-app/") {
		t.Errorf("the bucket holds profiles %q, want the one goroutine profile below cli/local/sample-app/", profiles)
	}
}
