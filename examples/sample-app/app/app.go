// Package app is the sample application that kprof profiles in examples and tests: an
// HTTP service exposing net/http/pprof, a health check and an endpoint that generates
// recognisable CPU and memory load on request.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync/atomic"
	"time"
)

// Config configures the sample application.
type Config struct {
	// Logger receives structured logs; slog.Default() when nil.
	Logger *slog.Logger
	// ShutdownTimeout bounds how long ListenAndServe waits for in-flight requests
	// after its context is cancelled; DefaultShutdownTimeout when zero.
	ShutdownTimeout time.Duration
}

// DefaultShutdownTimeout is how long in-flight requests may run after a shutdown signal.
const DefaultShutdownTimeout = 10 * time.Second

// Validate reports a configuration value that cannot work.
func (c *Config) Validate() error {
	if c.ShutdownTimeout < 0 {
		return fmt.Errorf("shutdownTimeout: must not be negative, got %s", c.ShutdownTimeout)
	}
	return nil
}

// App is the sample application. Its zero value is not usable; call New.
type App struct {
	log             *slog.Logger
	shutdownTimeout time.Duration
	// heldBytes is the memory currently held by /load?mem requests, bounded by MaxMemoryBytes.
	heldBytes atomic.Int64
	// loads is cancelled when shutdown starts: synthetic load stops at once, while
	// profile requests in flight may finish within the shutdown timeout.
	loads     context.Context
	stopLoads context.CancelFunc
}

// New returns an App for cfg, with defaults filled in.
func New(cfg Config) (*App, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sample-app config: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	loads, stopLoads := context.WithCancel(context.Background())
	return &App{log: cfg.Logger, shutdownTimeout: cfg.ShutdownTimeout, loads: loads, stopLoads: stopLoads}, nil
}

// Handler serves /healthz, /load and the pprof endpoints under /debug/pprof/.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /load", a.handleLoad)
	mux.HandleFunc("POST /load", a.handleLoad)
	mux.HandleFunc("/debug/pprof/", pprof.Index) // named profiles: heap, goroutine, allocs, mutex, block, ...
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ListenAndServe serves Handler on addr until ctx is cancelled, then shuts down
// gracefully: it stops accepting connections and waits up to the shutdown timeout for
// in-flight requests before closing them.
func (a *App) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return a.Serve(ctx, ln)
}

// Serve is ListenAndServe on an existing listener, which it closes.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// No WriteTimeout: CPU profiles and /load requests legitimately run for minutes,
		// and net/http/pprof refuses profiles longer than a WriteTimeout.
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	a.log.Info("serving", "addr", ln.Addr().String(), "pprof", "http://"+ln.Addr().String()+"/debug/pprof/")

	select {
	case err := <-errc:
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	a.log.Info("shutting down", "timeout", a.shutdownTimeout)
	a.stopLoads()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), a.shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		closeErr := srv.Close() // cancels the contexts of the requests still running
		return fmt.Errorf("shut down gracefully within %s: %w", a.shutdownTimeout, errors.Join(err, closeErr))
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve on %s: %w", ln.Addr(), err)
	}
	return nil
}
