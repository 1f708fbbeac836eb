package ui

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/logging"
)

// Timeouts of Server: one home for them, whether `kprof ui` or the operator serves.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 30 * time.Second
	// WriteTimeout is long: a large profile's graph takes a while.
	WriteTimeout   = 5 * time.Minute
	IdleTimeout    = 2 * time.Minute
	MaxHeaderBytes = 64 << 10
)

// ServerConfig configures NewServer.
type ServerConfig struct {
	// Listen is the HOST:PORT to listen on (port 0 picks a free port; an empty host is
	// every interface). Required unless Listener is set.
	Listen string
	// Listener is served instead of listening on Listen; the Server owns it from then on
	// and closes it in Shutdown.
	Listener net.Listener
	// Handler serves the requests (New's UI). Required.
	Handler http.Handler
	// Logger receives the HTTP server's own errors. Nil discards.
	Logger *slog.Logger
}

// SetDefaults fills in the zero fields.
func (c *ServerConfig) SetDefaults() {
	c.Logger = logging.OrDiscard(c.Logger)
}

// Validate reports every bad field by name.
func (c ServerConfig) Validate() error {
	var errs []error
	if c.Handler == nil {
		errs = append(errs, errors.New("Handler: required"))
	}
	switch {
	case c.Listener != nil && c.Listen != "":
		errs = append(errs, fmt.Errorf("Listen %q and Listener: set one of them, not both", c.Listen))
	case c.Listener == nil:
		if err := CheckListen(c.Listen); err != nil {
			errs = append(errs, fmt.Errorf("Listen: %w", err))
		}
	}
	return errors.Join(errs...)
}

// CheckListen tells why addr is not a HOST:PORT to listen on.
func CheckListen(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT, e.g. 127.0.0.1:8080 or :8080: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("%q: bad port: %w", addr, err)
	}
	return nil
}

// Server serves a handler over HTTP with the timeouts above. Start listens and serves
// in the background; Shutdown stops it gracefully.
type Server struct {
	cfg    ServerConfig
	srv    *http.Server
	failed chan error // Serve's error when it stops on its own

	mu     sync.Mutex
	guard  lifecycle.Guard
	ln     net.Listener
	served chan struct{} // closed when Serve returned; nil until Start listens
}

// NewServer returns a Server for cfg; it does not listen yet.
func NewServer(cfg ServerConfig) (*Server, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ui server: %w", err)
	}
	return &Server{
		cfg: cfg,
		srv: &http.Server{
			Handler:           cfg.Handler,
			ReadHeaderTimeout: ReadHeaderTimeout,
			ReadTimeout:       ReadTimeout,
			WriteTimeout:      WriteTimeout,
			IdleTimeout:       IdleTimeout,
			MaxHeaderBytes:    MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
		},
		failed: make(chan error, 1),
	}, nil
}

// Start listens (unless the config gave a Listener) and serves in the background. It
// returns once the server accepts connections, and keeps no reference to ctx.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.guard.Start(ctx); err != nil {
		return fmt.Errorf("ui server: start: %w", err)
	}
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = (&net.ListenConfig{}).Listen(ctx, "tcp", s.cfg.Listen); err != nil {
			return fmt.Errorf("ui server: listen on %s: %w", s.cfg.Listen, err)
		}
	}
	s.ln, s.served = ln, make(chan struct{})
	go func() {
		defer close(s.served)
		if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			s.failed <- fmt.Errorf("ui server on %s: %w", ln.Addr(), err)
		}
	}()
	return nil
}

// Addr is the address the server listens on; nil before Start.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Err receives the error that stopped the server on its own (never after Shutdown).
func (s *Server) Err() <-chan error { return s.failed }

// Shutdown stops accepting connections and waits, until ctx ends, for the requests in
// flight; then it closes the rest. It is idempotent and safe without Start.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.guard.Shutdown() {
		s.mu.Unlock()
		return nil
	}
	served := s.served
	s.mu.Unlock()
	if served == nil {
		if s.cfg.Listener != nil {
			_ = s.cfg.Listener.Close()
		}
		return nil
	}
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = errors.Join(fmt.Errorf("ui server: shut down: %w", err), s.srv.Close())
	}
	<-served
	return err
}
