package capture

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/utils/clock"

	"github.com/kprof/kprof/internal/config/check"
	"github.com/kprof/kprof/internal/logging"
)

// Defaults applied by Config.SetDefaults.
const (
	DefaultMaxConcurrent        = 16
	DefaultMaxProfileBytes      = 64 << 20
	DefaultMaxDecompressedBytes = 256 << 20
	DefaultRequestTimeout       = 30 * time.Second
	DefaultStoreTimeout         = 60 * time.Second
	DefaultJitter               = 0.1

	dialTimeout         = 5 * time.Second
	tlsHandshakeTimeout = 5 * time.Second
	maxHeaderBytes      = 64 << 10
	maxRedirects        = 3
)

// Config configures an Engine. The zero value is valid (SetDefaults fills it in).
type Config struct {
	// MaxConcurrent is how many target rounds run at once across all groups. Default 16.
	MaxConcurrent int
	// MaxProfileBytes limits a response body. Default 64 MiB.
	MaxProfileBytes int64
	// MaxDecompressedBytes limits a gzip'd profile once decompressed for validation,
	// so a small gzip bomb cannot exhaust memory. Default 256 MiB, at least MaxProfileBytes.
	MaxDecompressedBytes int64
	// RequestTimeout bounds one request of a non-CPU type (default 30s); a CPU
	// request gets the policy's CPUDuration plus RequestTimeout.
	RequestTimeout time.Duration
	// StoreTimeout bounds one Store.Put. Default 60s.
	StoreTimeout time.Duration
	// Jitter is the fraction of Interval by which scheduled rounds are spread, 0 < Jitter < 1. Default 0.1.
	Jitter float64
	// HTTPClient fetches profiles. Default: a client with dial and TLS handshake
	// timeouts, a response header size limit, no proxy, no transparent
	// decompression and no redirects to other hosts. The response header deadline
	// is the per-request timeout, since a CPU profile's headers come only after
	// its sampling time.
	HTTPClient *http.Client
	// OnResult, when set, is called once per attempt (one type of one target) from
	// engine goroutines, possibly concurrently, while the round holds its
	// concurrency slot: it must not block for long. No call happens after
	// Shutdown returns.
	OnResult func(Result)
	// Metrics, when set, receives capture metrics.
	Metrics *Metrics
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger
	// QuietFailures logs each failed capture at debug level (V(1)) instead of as an
	// error: for the operator, which reports failures through Events, status and
	// metrics and logs a pod's failures when they start and end.
	QuietFailures bool
	// Clock times the schedule and stamps captures. Default: the real clock; tests
	// use a fake one.
	Clock clock.Clock
}

// SetDefaults fills in the zero fields.
func (c *Config) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
	check.Default(&c.MaxConcurrent, DefaultMaxConcurrent)
	check.Default(&c.MaxProfileBytes, DefaultMaxProfileBytes)
	check.Default(&c.MaxDecompressedBytes, max(DefaultMaxDecompressedBytes, c.MaxProfileBytes))
	check.Default(&c.RequestTimeout, DefaultRequestTimeout)
	check.Default(&c.StoreTimeout, DefaultStoreTimeout)
	check.Default(&c.Jitter, DefaultJitter)
	if c.HTTPClient == nil {
		c.HTTPClient = DefaultHTTPClient()
	}
	if c.Clock == nil {
		c.Clock = clock.RealClock{}
	}
}

// Validate reports every bad field by name; zero values are valid (SetDefaults fills them).
func (c *Config) Validate() error {
	var errs []error
	if c.MaxConcurrent < 0 {
		errs = append(errs, fmt.Errorf("MaxConcurrent %d is negative", c.MaxConcurrent))
	}
	if c.MaxProfileBytes < 0 {
		errs = append(errs, fmt.Errorf("MaxProfileBytes %d is negative", c.MaxProfileBytes))
	}
	if c.MaxDecompressedBytes != 0 && c.MaxDecompressedBytes < c.MaxProfileBytes {
		errs = append(errs, fmt.Errorf("MaxDecompressedBytes %d is below MaxProfileBytes %d", c.MaxDecompressedBytes, c.MaxProfileBytes))
	}
	if c.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout %s is negative", c.RequestTimeout))
	}
	if c.StoreTimeout < 0 {
		errs = append(errs, fmt.Errorf("StoreTimeout %s is negative", c.StoreTimeout))
	}
	if c.Jitter != 0 && !(c.Jitter > 0 && c.Jitter < 1) { // also rejects NaN
		errs = append(errs, fmt.Errorf("Jitter %v is outside (0, 1)", c.Jitter))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("capture engine config: %w", err)
	}
	return nil
}

// DefaultHTTPClient returns the client the engine uses when Config.HTTPClient is
// nil. It has no overall Timeout: the engine sets a deadline on every request.
func DefaultHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy: nil, // pprof targets are pod IPs or local addresses: never via a proxy
		DialContext: (&net.Dialer{
			Timeout:   dialTimeout,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		MaxResponseHeaderBytes: maxHeaderBytes,
		// Store exactly what the target served: no Accept-Encoding, no transparent gunzip.
		DisableCompression:    true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: sameHostRedirects,
	}
}

// sameHostRedirects follows at most maxRedirects redirects, and only to the same
// scheme and host as the original request.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	first := via[0].URL
	if req.URL.Scheme != first.Scheme || req.URL.Host != first.Host {
		return fmt.Errorf("redirect to another host %s://%s refused", req.URL.Scheme, req.URL.Host)
	}
	return nil
}
