package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/testenv"
)

func TestUIListenAddrIsLoopbackUnlessAHostIsNamed(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{":8080", "127.0.0.1:8080", ""},
		{"0.0.0.0:9000", "0.0.0.0:9000", ""},
		{"[::1]:0", "[::1]:0", ""},
		{"8080", "", `--listen "8080": want HOST:PORT`},
	} {
		got, err := uiListenAddr(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("uiListenAddr(%q) = %q, %v; want an error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("uiListenAddr(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if f := newUICmd().Flags().Lookup("listen"); f == nil || f.DefValue != "127.0.0.1:8080" {
		t.Errorf("--listen defaults to %v, want 127.0.0.1:8080", f)
	}
}

func TestUIServesTheStoreAndStopsWhenCancelled(t *testing.T) {
	base := startSampleApp(t)
	cfgFile := filepath.Join(t.TempDir(), "kprof.yaml")
	cfg := "targets: [{name: sample-app, url: " + base + "}]\nprofileTypes: [cpu]\ncpuProfileDurationSeconds: 1\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	store := filepath.Join(t.TempDir(), "profiles")
	// A /load burn runs through the whole 1 s profile, so burnCPU is in it however
	// loaded the machine is (the background load alone may miss a short profile).
	loadSpike(t, base, "cpu=60s")
	if _, stderr, err := execute(t, newRunCmd(), "--config", cfgFile, "--once", "--output", store); err != nil {
		t.Fatalf("kprof run --once: %v\nstderr:\n%s", err, stderr)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var stderr testenv.SyncBuffer
	root := rootCmd(newUICmd())
	root.SetArgs([]string{"ui", "--store", store, "--listen", "127.0.0.1:0"})
	root.SetOut(io.Discard)
	root.SetErr(&stderr)
	done := make(chan error, 1)
	go func() { done <- root.ExecuteContext(ctx) }()

	urlRE := regexp.MustCompile(`on (http://127\.0\.0\.1:\d+)/`)
	var url string
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		select {
		case err := <-done:
			t.Fatalf("kprof ui exited early: %v\n%s", err, stderr.String())
		default:
		}
		m := urlRE.FindStringSubmatch(stderr.String())
		if m == nil {
			return false, "kprof ui printed no URL: " + stderr.String()
		}
		url = m[1]
		return true, ""
	})
	hc := &http.Client{Timeout: 30 * time.Second}
	get := func(path string) (int, string) {
		resp, err := hc.Get(url + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b)
	}
	code, body := get("/?type=cpu")
	link := regexp.MustCompile(`href="(/profile/[^"]+/-/flamegraph)"`).FindStringSubmatch(body)
	if code != http.StatusOK || !strings.Contains(body, "sample-app") || link == nil {
		t.Fatalf("GET /?type=cpu: %d, want 200 listing the sample app's CPU profile with a link:\n%s", code, body)
	}
	if code, body := get(link[1]); code != http.StatusOK || !strings.Contains(body, "burnCPU") {
		t.Errorf("GET %s: %d, want the flame graph page naming burnCPU", link[1], code)
	}

	source := strings.TrimSuffix(link[1], "flamegraph") + "source"
	if code, _ := get(source); code != http.StatusOK {
		t.Errorf("GET %s: %d, want 200 (on loopback the source view reads local files)", source, code)
	}

	cancel() // what a signal does to the command's context
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("kprof ui after cancel: %v, want a clean stop", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("kprof ui did not stop within 30s of its context ending")
	}
	if _, err := hc.Get(url + "/healthz"); err == nil {
		t.Errorf("kprof ui still answers on %s after it stopped", url)
	}
}
