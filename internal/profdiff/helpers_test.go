package profdiff

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kprof/kprof/internal/capture"
	"github.com/kprof/kprof/internal/local"
	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// sampleApp is the sample app served on a random loopback port, with its background
// CPU load (burnCPU, about a fifth of a core) running.
type sampleApp struct{ url string }

func startSampleApp(t *testing.T) sampleApp {
	t.Helper()
	return sampleApp{url: testenv.ServeSampleApp(t)}
}

// capture stores one round of the given types of the app below dir with kprof's
// own capture code (profiles and their sidecars, laid out by the default key template).
func (s sampleApp) capture(t *testing.T, dir string, cpu time.Duration, types ...capture.ProfileType) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), cpu+time.Minute)
	defer cancel()
	err := local.CaptureOne(ctx, local.CaptureOneConfig{
		Target: capture.Target{BaseURL: s.url + "/debug/pprof", Meta: storage.Meta{Service: "sample"}},
		Types:  types, CPUDuration: cpu, Dir: dir, Logger: logtest.New(t),
	})
	if err != nil {
		t.Fatalf("capture %v: %v", types, err)
	}
}

// startLoad starts the app's /load?cpu=… spike and returns once the app says it runs.
func (s sampleApp) startLoad(t *testing.T, query string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/load?"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /load?%s: %v", query, err)
	}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close() })
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "started") {
		t.Fatalf("GET /load?%s: status %s, first line %q, err %v", query, resp.Status, line, err)
	}
}

// profileFiles lists the profile files (not sidecars) below dir, sorted.
func profileFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, ".pb.gz") {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// goTool runs `go tool pprof ARGS...` and returns its standard output.
func goToolPprof(t *testing.T, args ...string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go is not on PATH: %v", err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, append([]string{"tool", "pprof"}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go tool pprof %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}
