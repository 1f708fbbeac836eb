//go:build scale

package scale

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// operatorProfiles is the operator's own CPU profile of part of the +schedule window and its
// heap at the end of it, from its --enable-pprof endpoint.
type operatorProfiles struct {
	wg                sync.WaitGroup
	cpuPath, heapPath string
	cpuTop, heapTop   string
	cpuErr, heapErr   error
	cpuSeconds        int
	dir               string
	metricsBase       string
}

// profileOperator starts a CPU profile of d in the background; wait() fetches the heap too.
func profileOperator(t *testing.T, m *manager, dir string, d time.Duration) *operatorProfiles {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := &operatorProfiles{
		dir: dir, metricsBase: strings.TrimSuffix(m.metricsURL, "/metrics"), cpuSeconds: int(d.Seconds()),
		cpuPath: filepath.Join(dir, "operator-cpu-schedule.pb.gz"), heapPath: filepath.Join(dir, "operator-heap-schedule.pb.gz"),
	}
	p.wg.Go(func() {
		p.cpuErr = fetchTo(p.metricsBase+fmt.Sprintf("/debug/pprof/profile?seconds=%d", p.cpuSeconds), p.cpuPath, d+30*time.Second)
		if p.cpuErr == nil {
			p.cpuTop, p.cpuErr = pprofTop(p.cpuPath)
		}
	})
	return p
}

// finish waits for the CPU profile and takes the heap profile.
func (p *operatorProfiles) finish() {
	p.wg.Wait()
	p.heapErr = fetchTo(p.metricsBase+"/debug/pprof/heap", p.heapPath, 30*time.Second)
	if p.heapErr == nil {
		p.heapTop, p.heapErr = pprofTop(p.heapPath, "-sample_index=inuse_space")
	}
}

func fetchTo(url, path string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return f.Close()
}

// pprofTop is `go tool pprof -top` of path: the 25 heaviest functions, flat and cumulative.
func pprofTop(path string, extra ...string) (string, error) {
	args := append([]string{"tool", "pprof", "-top", "-nodecount=25"}, extra...)
	out, err := exec.Command("go", append(args, path)...).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go tool pprof -top %s: %v\n%s", path, err, out)
	}
	return string(out), nil
}
