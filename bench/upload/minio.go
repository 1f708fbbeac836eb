package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"
)

// minioServer is a MinIO started by the benchmark (internal/testenv needs a
// testing.TB, so this is its small non-test twin, using the same binary).
type minioServer struct {
	endpoint, accessKey, secretKey string
	cmd                            *exec.Cmd
	dir                            string
	exited                         chan struct{}
}

const (
	minioLiveTimeout = 30 * time.Second
	minioStopTimeout = 10 * time.Second
)

// startMinIO runs bin on a free loopback port with its data in a new temp dir and
// waits until it is live.
func startMinIO(ctx context.Context, bin string) (*minioServer, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("MinIO not installed at %s (run hack/install-minio.sh, or pass --endpoint): %w", bin, err)
	}
	dir, err := os.MkdirTemp("", "kprof-bench-minio-")
	if err != nil {
		return nil, fmt.Errorf("minio data dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	console, err := freePort()
	if err != nil {
		return nil, err
	}
	m := &minioServer{
		endpoint:  "http://127.0.0.1:" + strconv.Itoa(port),
		accessKey: "kprof-bench", secretKey: "kprof-bench-secret-key",
		dir: dir, exited: make(chan struct{}),
	}
	logf, err := os.Create(filepath.Join(dir, "minio.log"))
	if err != nil {
		return nil, fmt.Errorf("minio log: %w", err)
	}
	m.cmd = exec.Command(bin, "server", filepath.Join(dir, "data"), "--quiet",
		"--address", "127.0.0.1:"+strconv.Itoa(port), "--console-address", "127.0.0.1:"+strconv.Itoa(console))
	m.cmd.Env = append(os.Environ(), "MINIO_ROOT_USER="+m.accessKey, "MINIO_ROOT_PASSWORD="+m.secretKey,
		"MINIO_BROWSER=off", "MINIO_UPDATE=off")
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	if err := m.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start minio: %w", err)
	}
	go func() { _ = m.cmd.Wait(); logf.Close(); close(m.exited) }()

	ctx, cancel := context.WithTimeout(ctx, minioLiveTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, m.endpoint+"/minio/health/live", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return m, nil
			}
		}
		select {
		case <-ctx.Done():
			m.stop()
			return nil, fmt.Errorf("minio not live at %s within %s (log: %s): %w", m.endpoint, minioLiveTimeout,
				filepath.Join(dir, "minio.log"), errors.Join(err, ctx.Err()))
		case <-m.exited:
			return nil, fmt.Errorf("minio exited at start (log: %s)", filepath.Join(dir, "minio.log"))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stop kills the server and removes its data.
func (m *minioServer) stop() {
	_ = m.cmd.Process.Kill()
	select {
	case <-m.exited:
	case <-time.After(minioStopTimeout):
	}
	_ = os.RemoveAll(m.dir)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
