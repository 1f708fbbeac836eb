package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/testenv"
)

// The stamps the test binary is built with, as make build and the Dockerfile stamp them.
const (
	stampVersion = "v0.9.1-test"
	stampCommit  = "abc1234def56"
	stampDate    = "2026-12-07T10:11:12Z"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// kprofBinary builds cmd/kprof once per test run, stamped with -ldflags -X.
func kprofBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "kprof-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "kprof")
		pkg := "github.com/kprof/kprof/internal/version"
		ldflags := fmt.Sprintf("-X %s.Version=%s -X %s.Commit=%s -X %s.Date=%s", pkg, stampVersion, pkg, stampCommit, pkg, stampDate)
		out, err := exec.Command("go", "build", "-ldflags", ldflags, "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func TestVersionPrintsTheStampedBuild(t *testing.T) {
	bin := kprofBinary(t)
	want := "kprof " + stampVersion + " (commit " + stampCommit + ", built " + stampDate + ")\n"
	for _, args := range [][]string{{"version"}, {"--version"}} {
		t.Run("kprof "+strings.Join(args, " "), func(t *testing.T) {
			out, err := exec.Command(bin, args...).Output()
			if err != nil {
				t.Fatalf("kprof %v: %v", args, err)
			}
			if string(out) != want {
				t.Errorf("printed %q, want %q", out, want)
			}
		})
	}
	t.Run("kprof version -o json", func(t *testing.T) {
		out, err := exec.Command(bin, "version", "-o", "json").Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{`"version": "` + stampVersion + `"`, `"commit": "` + stampCommit + `"`, `"date": "` + stampDate + `"`} {
			if !bytes.Contains(out, []byte(w)) {
				t.Errorf("output lacks %s:\n%s", w, out)
			}
		}
	})
}

// startKprof starts the binary with args and returns it, its stderr and a channel
// that yields its exit error once it has exited.
func startKprof(t *testing.T, args ...string) (*exec.Cmd, *testenv.SyncBuffer, <-chan error) {
	t.Helper()
	cmd := exec.Command(kprofBinary(t), args...)
	var stderr testenv.SyncBuffer
	cmd.Stderr = &stderr
	cmd.Dir = t.TempDir()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	done := make(chan struct{})
	go func() { exited <- cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return cmd, &stderr, exited
}

// exitCode waits (up to a minute) for the process and returns its exit status.
func exitCode(t *testing.T, exited <-chan error, stderr *testenv.SyncBuffer) int {
	t.Helper()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		switch {
		case err == nil:
			return 0
		case errors.As(err, &ee):
			return ee.ExitCode()
		default:
			t.Fatalf("wait: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("kprof did not exit within a minute of the signal; stderr:\n%s", stderr.String())
	}
	return -1
}

// poll calls cond every 50ms until it holds or d has passed.
func poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRunInterruptedByCtrlCExits130(t *testing.T) {
	base := startSampleApp(t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kprof.yaml")
	out := filepath.Join(dir, "profiles")
	if err := os.WriteFile(cfg, []byte("targets: [{name: app, url: "+base+"}]\nprofileTypes: [goroutine]\n"+
		"onDemand: {enabled: true, intervalSeconds: 5}\nstorage: {local: {path: "+out+"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd, stderr, exited := startKprof(t, "run", "--config", cfg)
	// The run is up once it has stored a profile.
	poll(t, time.Minute, "a stored profile", func() bool {
		found := false
		_ = filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
			if err == nil && strings.HasSuffix(p, "_goroutine.pb.gz") {
				found = true
			}
			return nil
		})
		return found
	})
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, exited, stderr); code != 130 {
		t.Fatalf("exit status %d, want 130; stderr:\n%s", code, stderr.String())
	}
	if s := stderr.String(); !strings.Contains(s, "stopping gracefully") || strings.Contains(s, "exiting without waiting") {
		t.Errorf("stderr does not show one graceful stop:\n%s", s)
	}
}

func TestASecondSignalForcesExit(t *testing.T) {
	// A target that never answers: the run's graceful shutdown waits for the capture
	// (up to its 10 s grace), which the second signal cuts short.
	requested := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case requested <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kprof.yaml")
	if err := os.WriteFile(cfg, []byte("targets: [{name: app, url: "+srv.URL+"/debug/pprof}]\nprofileTypes: [goroutine]\n"+
		"onDemand: {enabled: true, intervalSeconds: 5}\nstorage: {local: {path: "+filepath.Join(dir, "profiles")+"}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		second os.Signal
		want   int
	}{
		{"Ctrl-C twice exits 130", os.Interrupt, 130},
		{"Ctrl-C then SIGTERM exits 143", syscall.SIGTERM, 143},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, stderr, exited := startKprof(t, "run", "--config", cfg)
			select {
			case <-requested:
			case <-time.After(time.Minute):
				t.Fatalf("kprof never requested a profile; stderr:\n%s", stderr.String())
			}
			if err := cmd.Process.Signal(os.Interrupt); err != nil {
				t.Fatal(err)
			}
			// The first signal has been handled once the run is stopping.
			poll(t, 30*time.Second, "the graceful stop", func() bool { return strings.Contains(stderr.String(), "stopping gracefully") })
			if err := cmd.Process.Signal(tc.second); err != nil {
				t.Fatal(err)
			}
			if code := exitCode(t, exited, stderr); code != tc.want {
				t.Fatalf("exit status %d, want %d; stderr:\n%s", code, tc.want, stderr.String())
			}
			if s := stderr.String(); !strings.Contains(s, "exiting without waiting for the shutdown to finish") {
				t.Errorf("stderr does not say the exit was forced:\n%s", s)
			}
		})
	}
}
