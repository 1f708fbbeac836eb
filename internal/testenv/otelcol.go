package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pprofile"
)

// OTelCollectorVersion is the collector hack/install-otelcol.sh builds.
const OTelCollectorVersion = "v0.160.0"

const (
	otelcolReadyTimeout = 30 * time.Second
	otelcolWaitTimeout  = 30 * time.Second
	// maxOTelOutput bounds the read of what the collector wrote.
	maxOTelOutput = 256 << 20
)

// OTelCollectorPath is where hack/install-otelcol.sh puts the collector:
// $KPROF_OTELCOL, else $KPROF_CACHE/bin/otelcol-<version>.
func OTelCollectorPath() string {
	if p := os.Getenv("KPROF_OTELCOL"); p != "" {
		return p
	}
	return toolPath("otelcol-" + OTelCollectorVersion)
}

// OTelCollector is a real OpenTelemetry Collector with an OTLP gRPC receiver on
// a free loopback port and profiles and metrics pipelines to file exporters
// (OTLP JSON, one export request per line) in a temporary directory. Profiles
// are enabled with --feature-gates=+service.profilesSupport.
type OTelCollector struct {
	endpoint    string
	dir         string
	profilesOut string
	metricsOut  string
	proc        *process
}

// otelcolConfig is the collector's configuration; %s are the receiver's
// endpoint and the two output files. The debug exporter logs one line per
// batch into the collector's log, which a failing test prints. Internal
// metrics are off so that no port but the receiver's is opened.
const otelcolConfig = `receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %s
exporters:
  debug:
    verbosity: basic
  file/profiles:
    path: %s
    append: true
    flush_interval: 100ms
  file/metrics:
    path: %s
    append: true
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    profiles:
      receivers: [otlp]
      exporters: [file/profiles, debug]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics, debug]
`

// NewOTelCollector prepares a collector (OTelCollectorPath) on a free loopback
// port, with its configuration, output and log in a temporary directory of t,
// without starting it: Start does. A missing binary fails t with how to
// install it. When t ends the collector is stopped, and its log printed if t
// failed.
func NewOTelCollector(t testing.TB) *OTelCollector {
	t.Helper()
	bin := OTelCollectorPath()
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("OpenTelemetry Collector not installed at %s (run hack/install-otelcol.sh or `make tools`): %v", bin, err)
	}
	dir := t.TempDir()
	c := &OTelCollector{
		endpoint:    "127.0.0.1:" + strconv.Itoa(freeLoopbackPort(t)),
		dir:         dir,
		profilesOut: filepath.Join(dir, "profiles.jsonl"),
		metricsOut:  filepath.Join(dir, "metrics.jsonl"),
	}
	config := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(config, fmt.Appendf(nil, otelcolConfig, c.endpoint, c.profilesOut, c.metricsOut), 0o644); err != nil {
		t.Fatalf("write collector config: %v", err)
	}
	c.proc = &process{
		name:    "otelcol",
		path:    bin,
		args:    []string{"--config=file:" + config, "--feature-gates=+service.profilesSupport"},
		logPath: filepath.Join(dir, "otelcol.log"),
	}
	t.Cleanup(func() {
		c.proc.stop()
		if t.Failed() {
			t.Logf("otelcol log (tail):\n%s", c.proc.logTail(8192))
		}
	})
	return c
}

// StartOTelCollector starts a collector (see NewOTelCollector) and waits until
// its receiver accepts connections.
func StartOTelCollector(t testing.TB) *OTelCollector {
	t.Helper()
	c := NewOTelCollector(t)
	c.Start(t)
	return c
}

// Endpoint is the host:port of the OTLP gRPC receiver (plaintext).
func (c *OTelCollector) Endpoint() string { return c.endpoint }

// Start starts the collector and waits, at most 30 s, until its receiver
// accepts connections. What it exported before a Stop is kept.
func (c *OTelCollector) Start(t testing.TB) {
	t.Helper()
	if err := c.proc.start(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), otelcolReadyTimeout)
	defer cancel()
	for {
		conn, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", c.endpoint)
		if err == nil {
			_ = conn.Close()
			return
		}
		if exited, werr := c.proc.exited(); exited {
			t.Fatalf("otelcol exited before its receiver listened on %s: %v\nlog (tail):\n%s", c.endpoint, werr, c.proc.logTail(8192))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("otelcol receiver not listening on %s after %s: %v", c.endpoint, otelcolReadyTimeout, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the collector (SIGTERM, which flushes its exporters).
func (c *OTelCollector) Stop(t testing.TB) {
	t.Helper()
	c.proc.stop()
}

// LogTail returns the last n bytes at most of the collector's log.
func (c *OTelCollector) LogTail(n int) string { return c.proc.logTail(n) }

// Profiles returns the profiles the collector has written so far, one per
// export request it received.
func (c *OTelCollector) Profiles() ([]pprofile.Profiles, error) {
	var out []pprofile.Profiles
	err := readJSONLines(c.profilesOut, func(line []byte) error {
		pd, err := (&pprofile.JSONUnmarshaler{}).UnmarshalProfiles(line)
		out = append(out, pd)
		return err
	})
	return out, err
}

// Metrics returns the metrics the collector has written so far, one per
// export request it received.
func (c *OTelCollector) Metrics() ([]pmetric.Metrics, error) {
	var out []pmetric.Metrics
	err := readJSONLines(c.metricsOut, func(line []byte) error {
		md, err := (&pmetric.JSONUnmarshaler{}).UnmarshalMetrics(line)
		out = append(out, md)
		return err
	})
	return out, err
}

// WaitProfiles polls Profiles until done accepts what was written and returns
// it; after 30 s it fails t with what was written and the collector's log.
func (c *OTelCollector) WaitProfiles(t testing.TB, done func([]pprofile.Profiles) bool) []pprofile.Profiles {
	t.Helper()
	return waitFor(t, c, "profiles", c.Profiles, done)
}

// WaitMetrics polls Metrics until done accepts what was written and returns
// it; after 30 s it fails t with what was written and the collector's log.
func (c *OTelCollector) WaitMetrics(t testing.TB, done func([]pmetric.Metrics) bool) []pmetric.Metrics {
	t.Helper()
	return waitFor(t, c, "metrics", c.Metrics, done)
}

func waitFor[T any](t testing.TB, c *OTelCollector, what string, read func() ([]T, error), done func([]T) bool) []T {
	t.Helper()
	deadline := time.Now().Add(otelcolWaitTimeout)
	for {
		got, err := read()
		// A line being written may be cut short: only the final read's error counts.
		if err == nil && done(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the collector did not write the expected %s within %s: %d requests written, read error %v", what, otelcolWaitTimeout, len(got), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readJSONLines calls fn with each complete line of path; a missing file has
// no lines.
func readJSONLines(path string, fn func([]byte) error) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxOTelOutput+1))
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxOTelOutput {
		return fmt.Errorf("%s is larger than %d bytes", path, maxOTelOutput)
	}
	for n := 1; len(b) > 0; n++ {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return fmt.Errorf("%s: line %d is not complete yet", path, n)
		}
		line := bytes.TrimSpace(b[:i])
		b = b[i+1:]
		if len(line) == 0 {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s: line %d: %w", path, n, err)
		}
	}
	return nil
}
