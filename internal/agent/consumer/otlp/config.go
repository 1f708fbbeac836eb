// Package otlp holds the node agent's OpenTelemetry (OTLP/gRPC) consumers:
// Profiles exports each profile event as OTLP profiles (one resource per
// process, with the Kubernetes semantic-convention attributes), Metrics
// exports the resource-usage and agent counters as OTLP metrics. Both speak
// the wire format of OpenTelemetry Collector v0.160.0 (pdata v1.66.0), retry
// transient failures with exponential backoff, and dial lazily.
package otlp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults and limits applied by Config.SetDefaults and Config.Validate.
const (
	DefaultTimeout         = 10 * time.Second
	DefaultMaxElapsed      = 60 * time.Second
	DefaultRetryBaseDelay  = 500 * time.Millisecond
	DefaultRetryMaxDelay   = 10 * time.Second
	DefaultMaxRequestBytes = 4 << 20 // the collector's default gRPC receive limit
	MinMaxRequestBytes     = 64 << 10

	// CompressionNone and CompressionGzip are the values of Config.Compression.
	CompressionNone = "none"
	CompressionGzip = "gzip"

	// maxPEMFile bounds the read of CAFile, CertFile and KeyFile.
	maxPEMFile = 1 << 20
)

// Headers are gRPC metadata sent with every export, often credentials: they
// print and log with their keys only, never their values.
type Headers map[string]string

func (h Headers) String() string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k+":[redacted]")
	}
	slices.Sort(keys)
	return "map[" + strings.Join(keys, " ") + "]"
}

func (h Headers) GoString() string             { return h.String() }
func (h Headers) LogValue() slog.Value         { return slog.StringValue(h.String()) }
func (h Headers) Format(f fmt.State, _ rune)   { _, _ = io.WriteString(f, h.String()) }
func (h Headers) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// Config configures a Profiles or a Metrics consumer.
type Config struct {
	// Endpoint is the collector's OTLP gRPC address, host:port. Required.
	Endpoint string
	// Insecure sends plaintext. Otherwise TLS is used, verified against the
	// system roots or CAFile, for ServerName (default: Endpoint's host), with
	// the client certificate CertFile+KeyFile when both are set.
	Insecure                  bool
	CAFile, CertFile, KeyFile string
	ServerName                string
	// Headers are sent as gRPC metadata with every export. Keys are
	// lower-cased; values are never logged.
	Headers Headers
	// Compression is "gzip" or "none" (the default, also "").
	Compression string

	// Timeout bounds each export attempt. Default 10s.
	Timeout time.Duration
	// MaxElapsed bounds the attempts for one event or reading, retries
	// included, within the ctx of Consume. Default 60s.
	MaxElapsed time.Duration
	// Retries of Unavailable, ResourceExhausted, DeadlineExceeded and Aborted
	// wait from RetryBaseDelay doubling up to RetryMaxDelay (lifecycle.Backoff), or
	// what the server's RetryInfo asks. Defaults 500ms and 10s.
	RetryBaseDelay, RetryMaxDelay time.Duration
	// MaxRequestBytes is the size above which an event is split into several
	// export requests (by process). Default 4 MiB, the collector's default
	// gRPC receive limit; at least 64 KiB.
	MaxRequestBytes int
	// ThreadIDs keeps each sample's thread.id attribute. Off by default: a backend
	// that makes sample attributes labels (Pyroscope) would split every stack by
	// thread.
	ThreadIDs bool

	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// Set by build.
	tls *tls.Config
}

// settings are the optional timeouts and retry delays and the logger, each with its default.
func (c *Config) settings() []check.Setting {
	return []check.Setting{
		check.Field("Timeout", &c.Timeout, DefaultTimeout),
		check.Field("MaxElapsed", &c.MaxElapsed, DefaultMaxElapsed),
		check.Field("RetryBaseDelay", &c.RetryBaseDelay, DefaultRetryBaseDelay),
		check.Field("RetryMaxDelay", &c.RetryMaxDelay, DefaultRetryMaxDelay),
		logging.Setting(&c.Logger),
	}
}

// SetDefaults fills in the zero fields and spells Compression in lower case.
func (c *Config) SetDefaults() {
	switch strings.ToLower(c.Compression) {
	case "", CompressionNone:
		c.Compression = CompressionNone
	case CompressionGzip:
		c.Compression = CompressionGzip
	}
	check.SetDefaults(c.settings()...)
	check.Default(&c.MaxRequestBytes, DefaultMaxRequestBytes)
}

// Validate reports every bad field by name, reading the TLS files to check them;
// zero values are valid (SetDefaults fills them). Errors never hold header values.
func (c *Config) Validate() error {
	var errs []error
	errs = append(errs, c.validateEndpoint())
	if c.Insecure {
		for _, f := range []struct{ name, v string }{{"CAFile", c.CAFile}, {"CertFile", c.CertFile}, {"KeyFile", c.KeyFile}, {"ServerName", c.ServerName}} {
			if f.v != "" {
				errs = append(errs, fmt.Errorf("%s: must be empty when Insecure (plaintext) is set", f.name))
			}
		}
	} else {
		_, tlsErrs := c.loadTLS()
		errs = append(errs, tlsErrs...)
	}
	_, headerErrs := c.lowerHeaders()
	errs = append(errs, headerErrs...)
	switch strings.ToLower(c.Compression) {
	case "", CompressionNone, CompressionGzip:
	default:
		errs = append(errs, fmt.Errorf("Compression: must be %q or %q, got %q", CompressionGzip, CompressionNone, c.Compression))
	}
	errs = append(errs, check.NotNegatives(c.settings()...))
	errs = append(errs, check.NotBelow("RetryMaxDelay", c.RetryMaxDelay, "RetryBaseDelay", c.RetryBaseDelay))
	if c.MaxRequestBytes != 0 && c.MaxRequestBytes < MinMaxRequestBytes {
		errs = append(errs, fmt.Errorf("MaxRequestBytes: must be at least %d, got %d", MinMaxRequestBytes, c.MaxRequestBytes))
	}
	return errors.Join(errs...)
}

// build is what both consumers' constructors do: fill in the defaults, validate, then
// load the TLS files and lower-case the header keys for the connection.
func (c *Config) build() error {
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return err
	}
	if !c.Insecure {
		tlsCfg, errs := c.loadTLS()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		c.tls = tlsCfg
	}
	c.Headers, _ = c.lowerHeaders()
	return nil
}

func (c *Config) validateEndpoint() error {
	if c.Endpoint == "" {
		return errors.New("Endpoint: required (host:port of the collector's OTLP gRPC receiver)")
	}
	if strings.Contains(c.Endpoint, "://") {
		return fmt.Errorf("Endpoint: must be host:port without a scheme (use Insecure for plaintext), got %q", c.Endpoint)
	}
	host, port, err := net.SplitHostPort(c.Endpoint)
	if err != nil {
		return fmt.Errorf("Endpoint: must be host:port, got %q: %w", c.Endpoint, err)
	}
	if host == "" {
		return fmt.Errorf("Endpoint: host is empty in %q", c.Endpoint)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("Endpoint: port must be from 1 to 65535, got %q", port)
	}
	return nil
}

// loadTLS builds the client TLS configuration from the files.
func (c *Config) loadTLS() (*tls.Config, []error) {
	var errs []error
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.ServerName}
	if c.CAFile != "" {
		pem, err := readBounded(c.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CAFile: %w", err))
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				errs = append(errs, fmt.Errorf("CAFile: %s holds no PEM certificate", c.CAFile))
			}
			cfg.RootCAs = pool
		}
	}
	switch {
	case c.CertFile == "" && c.KeyFile == "":
	case c.CertFile == "":
		errs = append(errs, errors.New("CertFile: required when KeyFile is set"))
	case c.KeyFile == "":
		errs = append(errs, errors.New("KeyFile: required when CertFile is set"))
	default:
		certPEM, err := readBounded(c.CertFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("CertFile: %w", err))
		}
		keyPEM, kerr := readBounded(c.KeyFile)
		if kerr != nil {
			errs = append(errs, fmt.Errorf("KeyFile: %w", kerr))
		}
		if err == nil && kerr == nil {
			cert, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				errs = append(errs, fmt.Errorf("CertFile: %s and KeyFile %s are not a certificate and its key: %w", c.CertFile, c.KeyFile, err))
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
	}
	return cfg, errs
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEMFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(b) > maxPEMFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxPEMFile)
	}
	return b, nil
}

// lowerHeaders returns the headers with lower-case keys and checks them and the values
// against what gRPC metadata allows. Values are never quoted in an error.
func (c *Config) lowerHeaders() (Headers, []error) {
	if len(c.Headers) == 0 {
		return c.Headers, nil
	}
	var errs []error
	out := make(Headers, len(c.Headers))
	for _, k := range slices.Sorted(maps.Keys(c.Headers)) {
		v := c.Headers[k]
		lk := strings.ToLower(k)
		switch {
		case lk == "":
			errs = append(errs, errors.New("Headers: a key is empty"))
			continue
		case strings.HasPrefix(lk, "grpc-") || strings.HasPrefix(lk, ":"):
			errs = append(errs, fmt.Errorf("Headers: key %q is reserved by gRPC", k))
			continue
		case strings.IndexFunc(lk, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.')
		}) >= 0:
			errs = append(errs, fmt.Errorf("Headers: key %q may hold only letters, digits, '-', '_' and '.'", k))
			continue
		case strings.HasSuffix(lk, "-bin"):
			errs = append(errs, fmt.Errorf("Headers: key %q: binary (-bin) headers are not supported", k))
			continue
		case strings.IndexFunc(v, func(r rune) bool { return r < 0x20 || r > 0x7e }) >= 0:
			errs = append(errs, fmt.Errorf("Headers: the value of %q must be printable ASCII", k))
			continue
		}
		if _, dup := out[lk]; dup {
			errs = append(errs, fmt.Errorf("Headers: key %q is given twice (keys are case-insensitive)", k))
			continue
		}
		out[lk] = v
	}
	return out, errs
}
