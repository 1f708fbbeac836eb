package otlp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/kprof/kprof/internal/lifecycle"
)

// errShutdown is returned by an export after Shutdown.
var errShutdown = errors.New("consume after shutdown")

// conn is the lazily created gRPC connection of one consumer and its retry
// loop.
type conn struct {
	cfg  Config
	name string // the consumer's name, for logs
	log  *slog.Logger
	md   metadata.MD

	mu     sync.Mutex
	cc     *grpc.ClientConn
	closed bool
}

func newConn(cfg Config, name string) *conn {
	c := &conn{cfg: cfg, name: name, log: cfg.Logger.With("component", name, "endpoint", cfg.Endpoint)}
	if len(cfg.Headers) > 0 {
		c.md = metadata.MD{}
		for k, v := range cfg.Headers {
			c.md.Set(k, v)
		}
	}
	return c
}

// client returns the connection, creating it on first use. grpc.NewClient does
// not connect: the first RPC does.
func (c *conn) client() (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errShutdown
	}
	if c.cc != nil {
		return c.cc, nil
	}
	creds := insecure.NewCredentials()
	if !c.cfg.Insecure {
		creds = credentials.NewTLS(c.cfg.tls.Clone())
	}
	cc, err := grpc.NewClient(c.cfg.Endpoint,
		grpc.WithTransportCredentials(creds),
		grpc.WithUserAgent("kprof-agent/"+moduleVersion()),
	)
	if err != nil {
		return nil, fmt.Errorf("create gRPC client for %s: %w", c.cfg.Endpoint, err)
	}
	c.cc = cc
	return cc, nil
}

// close closes the connection; later exports fail. Idempotent.
func (c *conn) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.cc == nil {
		return nil
	}
	cc := c.cc
	c.cc = nil
	if err := cc.Close(); err != nil {
		return fmt.Errorf("close gRPC connection to %s: %w", c.cfg.Endpoint, err)
	}
	return nil
}

// callOptions are the per-RPC options of every export.
func (c *conn) callOptions() []grpc.CallOption {
	if c.cfg.Compression == CompressionGzip {
		return []grpc.CallOption{grpc.UseCompressor(gzip.Name)}
	}
	return nil
}

// result is what the server answered to one accepted export.
type result struct {
	rejected int64  // partial success: items rejected
	message  string // partial success: the server's explanation
}

// export calls rpc until it succeeds, fails with a code that is not worth a
// retry, MaxElapsed has passed (from this call, or from the earlier one that
// bounded ctx with withMaxElapsed), or ctx is done. Each attempt has Timeout and
// the configured headers. what names the request in errors and logs.
func (c *conn) export(ctx context.Context, what string, rpc func(context.Context, *grpc.ClientConn, ...grpc.CallOption) (result, error)) (result, error) {
	cc, err := c.client()
	if err != nil {
		return result{}, err
	}
	start := time.Now()
	ctx, cancel := c.withMaxElapsed(ctx)
	defer cancel()
	deadline, _ := ctx.Deadline() // MaxElapsed's or the caller's, the earlier
	if c.md != nil {
		ctx = metadata.NewOutgoingContext(ctx, metadata.Join(c.md, outgoing(ctx)))
	}
	opts := c.callOptions()
	var last error // the last failure, kept over one cut short by ctx
	stopped := func(attempt int) error {
		return fmt.Errorf("export %s to %s: stopped after %d attempts in %s, last failure %s: %w",
			what, c.cfg.Endpoint, attempt, time.Since(start).Round(time.Millisecond), status.Code(last), errors.Join(context.Cause(ctx), last))
	}
	for attempt := 1; ; attempt++ {
		actx, acancel := context.WithTimeout(ctx, c.cfg.Timeout)
		res, err := rpc(actx, cc, opts...)
		acancel()
		if err == nil {
			if attempt > 1 {
				c.log.Info("export succeeded after retries", "request", what, "attempts", attempt, "elapsed", time.Since(start).Round(time.Millisecond))
			}
			return res, nil
		}
		st := status.Convert(err)
		code := st.Code()
		if ctx.Err() != nil {
			// The caller's ctx or MaxElapsed ended this attempt: what the
			// attempt before it saw says more than "deadline exceeded".
			if last == nil || (code != codes.Canceled && code != codes.DeadlineExceeded) {
				last = err
			}
			return result{}, stopped(attempt)
		}
		last = err
		if !retryable(code) {
			return result{}, fmt.Errorf("export %s to %s: %s (not retried): %w", what, c.cfg.Endpoint, code, err)
		}
		wait, fromServer := lifecycle.Backoff{Base: c.cfg.RetryBaseDelay, Max: c.cfg.RetryMaxDelay}.Delay(attempt), false
		if d, ok := retryDelay(st); ok {
			wait, fromServer = d, true
		}
		if time.Now().Add(wait).After(deadline) {
			return result{}, fmt.Errorf("export %s to %s: %s; giving up after %d attempts: the next retry would pass the deadline (MaxElapsed %s or the caller's): %w", what, c.cfg.Endpoint, code, attempt, c.cfg.MaxElapsed, err)
		}
		c.log.Warn("export failed, retrying", "request", what, "code", code.String(), "attempt", attempt, "wait", wait, "wait_from_server", fromServer, "err", st.Message())
		if !lifecycle.Wait(ctx, wait) {
			return result{}, stopped(attempt)
		}
	}
}

// withMaxElapsed bounds ctx by MaxElapsed from now, with a cause that says so.
func (c *conn) withMaxElapsed(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, c.cfg.MaxElapsed, fmt.Errorf("MaxElapsed (%s) passed: %w", c.cfg.MaxElapsed, context.DeadlineExceeded))
}

func outgoing(ctx context.Context) metadata.MD {
	md, _ := metadata.FromOutgoingContext(ctx)
	return md
}

// retryable reports whether an export that failed with code may succeed
// later, as the OTLP specification lists them.
func retryable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.ResourceExhausted, codes.DeadlineExceeded, codes.Aborted:
		return true
	}
	return false
}

// retryDelay is the delay of the status's RetryInfo detail, when it has one.
func retryDelay(st *status.Status) (time.Duration, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			if delay := ri.GetRetryDelay().AsDuration(); delay >= 0 {
				return delay, true
			}
		}
	}
	return 0, false
}

func moduleVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "unknown"
}
