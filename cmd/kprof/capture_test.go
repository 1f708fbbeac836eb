package main

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

func TestCaptureCommand(t *testing.T) {
	base := startSampleApp(t)

	t.Run("capturing a URL with a trailing slash stores each type and prints the files", func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		stdout, stderr, err := execute(t, newCaptureCmd(), base+"/", "--type", "heap,goroutine", "--output", out, "--service", "shop")
		if err != nil {
			t.Fatalf("kprof capture: %v\nstderr:\n%s", err, stderr)
		}
		abs, _ := filepath.Abs(out)
		for _, want := range []string{"Stored 2 profile(s)", filepath.Join(abs, "local", "shop"), "_heap.pb.gz", "_goroutine.pb.gz"} {
			if !strings.Contains(stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, stdout)
			}
		}
	})

	t.Run("a cpu capture off a terminal logs its progress instead of drawing a bar", func(t *testing.T) {
		stdout, stderr, err := execute(t, newCaptureCmd(), base, "--type", "cpu", "--seconds", "1", "--output", t.TempDir())
		if err != nil {
			t.Fatalf("kprof capture --type cpu: %v\nstderr:\n%s", err, stderr)
		}
		if strings.Contains(stderr, "\r") || strings.Contains(stderr, "[####") {
			t.Errorf("stderr, not a terminal, has a progress bar:\n%q", stderr)
		}
		if !strings.Contains(stdout, "_cpu.pb.gz") {
			t.Errorf("stdout does not print the cpu profile:\n%s", stdout)
		}
	})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"an unknown type is named", []string{base, "--type", "cpux"}, `--type: unknown profile type "cpux"`},
		{"zero seconds are refused", []string{base, "--seconds", "0"}, "--seconds: must be at least 1"},
		{"a URL without a scheme is refused", []string{"127.0.0.1:6060/debug/pprof"}, "target URL: must be an http(s) URL"},
		{"a pod without a namespace is refused", []string{"pod", "checkout"}, "want NAMESPACE/NAME"},
		{"a negative --timeout is refused", []string{base, "--timeout", "-1s"}, "--timeout: must not be negative"},
		{"a --timeout no longer than the CPU profile is refused", []string{base, "--type", "cpu", "--seconds", "10", "--timeout", "10s"},
			"--timeout 10s: must be longer than the 10s CPU profile"},
		{"a missing kubeconfig is named", []string{"pod", "shop/checkout", "--kubeconfig", filepath.Join(t.TempDir(), "nope")}, "load kubeconfig"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := execute(t, newCaptureCmd(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("kprof capture %v = %v, want an error containing %q", tc.args, err, tc.want)
			}
		})
	}
}

func TestCaptureTimeoutEndsTheWholeCaptureNamingTheFlag(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // a target that never answers
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	_, stderr, err := execute(t, newCaptureCmd(), srv.URL+"/debug/pprof", "--type", "heap", "--timeout", "1s", "--output", t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "did not finish within --timeout 1s") {
		t.Fatalf("error %v, want one naming --timeout 1s; stderr:\n%s", err, stderr)
	}
}
