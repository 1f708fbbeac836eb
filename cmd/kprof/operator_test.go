package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestOperatorRefusesBadUIFlagsNamingThem(t *testing.T) {
	// Were a case accepted, the operator would look for a cluster: make that fail at once.
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"a port without a colon", []string{"--ui-listen", "8082"}, []string{`--ui-listen "8082": want HOST:PORT`}},
		{"a port that is no number", []string{"--ui-listen", ":ui"}, []string{`--ui-listen ":ui": bad port`}},
		{"a store while the UI is off", []string{"--ui-store", "s3://profiles/prod", "--ui-s3-region", "eu-west-1"},
			[]string{"--ui-store: needs --ui-listen (the web UI is off)", "--ui-s3-region: needs --ui-listen"}},
		{"a size limit while the UI is off", []string{"--ui-max-bytes", "1048576"}, []string{"--ui-max-bytes: needs --ui-listen"}},
		{"an S3 store without a bucket", []string{"--ui-listen", ":8082", "--ui-store", "s3://"}, []string{`--ui-store "s3://": no bucket`}},
		{"an S3 endpoint for a directory", []string{"--ui-listen", ":8082", "--ui-store", "/profiles", "--ui-s3-endpoint", "http://minio:9000"},
			[]string{"--ui-s3-endpoint: needs an s3:// --ui-store"}},
		{"a negative size limit", []string{"--ui-listen", ":8082", "--ui-max-bytes", "-1"}, []string{"--ui-max-bytes: must be positive, got -1"}},
		{"a zero size limit", []string{"--ui-listen", ":8082", "--ui-max-bytes", "0"}, []string{"--ui-max-bytes: must be positive, got 0"}},
	} {
		t.Run(tc.name+" is refused before the operator starts", func(t *testing.T) {
			_, _, err := execute(t, newOperatorCmd(), tc.args...)
			if err == nil {
				t.Fatalf("kprof operator %s succeeded", strings.Join(tc.args, " "))
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("kprof operator %s: %v\nwant it to say %q", strings.Join(tc.args, " "), err, w)
				}
			}
			if strings.Contains(err.Error(), "kubeconfig") {
				t.Errorf("kprof operator %s looked for a cluster before checking its flags: %v", strings.Join(tc.args, " "), err)
			}
		})
	}
	t.Run("the UI is off by default", func(t *testing.T) {
		if f := newOperatorCmd().Flags().Lookup("ui-listen"); f == nil || f.DefValue != "" {
			t.Errorf("--ui-listen is %+v, want a flag defaulting to empty (off)", f)
		}
	})
}

func TestOperatorPprofIsOffByDefaultAndNeedsTheMetricsPort(t *testing.T) {
	t.Run("--enable-pprof defaults to off", func(t *testing.T) {
		if f := newOperatorCmd().Flags().Lookup("enable-pprof"); f == nil || f.DefValue != "false" {
			t.Errorf("--enable-pprof is %+v, want a flag defaulting to false", f)
		}
	})
	t.Run("--enable-pprof without a metrics port is refused before the operator starts", func(t *testing.T) {
		t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
		_, _, err := execute(t, newOperatorCmd(), "--enable-pprof", "--metrics-bind-address", "0")
		if err == nil || !strings.Contains(err.Error(), "--enable-pprof: needs the metrics port") {
			t.Errorf("kprof operator --enable-pprof --metrics-bind-address 0: %v, want it refused naming --enable-pprof", err)
		}
	})
}

func TestOperatorRefusesLeaderElectionDurationsClientGoWouldNot(t *testing.T) {
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "no-kubeconfig"))
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"a lease no longer than the renew deadline", []string{"--leader-elect-lease-duration", "10s"},
			"--leader-elect-lease-duration 10s: must be longer than --leader-elect-renew-deadline 10s"},
		{"a renew deadline no longer than the retry period", []string{"--leader-elect-renew-deadline", "2s"},
			"--leader-elect-renew-deadline 2s: must be longer than --leader-elect-retry-period 2s"},
		{"a retry period of zero", []string{"--leader-elect-retry-period", "0s"}, "--leader-elect-retry-period: must be positive, got 0s"},
	} {
		t.Run(tc.name+" is refused before the operator starts", func(t *testing.T) {
			_, _, err := execute(t, newOperatorCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof operator %s: %v, want %q", strings.Join(tc.args, " "), err, tc.want)
			}
		})
	}
}
