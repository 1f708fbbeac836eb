package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// readHeaderTimeout bounds a slow client's request headers.
const readHeaderTimeout = 10 * time.Second

// servers serve /metrics and /healthz, on one listener when the addresses are
// equal. An address of "0" disables its endpoint.
type servers struct {
	metrics, health string
	reg             *prometheus.Registry
	check           func() error
	log             *slog.Logger

	mu        sync.Mutex
	srvs      []*http.Server
	listeners []net.Listener
	mAddr     string
	hAddr     string
	wg        sync.WaitGroup
}

func newServers(metricsAddr, healthAddr string, reg *prometheus.Registry, check func() error, log *slog.Logger) *servers {
	return &servers{metrics: metricsAddr, health: healthAddr, reg: reg, check: check, log: log}
}

func (s *servers) healthzHandler(w http.ResponseWriter, _ *http.Request) {
	if err := s.check(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}

// listen binds the addresses, so that a taken port fails Start.
func (s *servers) listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	type endpoint struct {
		addr string
		mux  *http.ServeMux
		set  []*string
	}
	var eps []*endpoint
	add := func(addr, path string, h http.Handler, dst *string) {
		if addr == "0" {
			return
		}
		for _, ep := range eps {
			if ep.addr == addr {
				ep.mux.Handle(path, h)
				ep.set = append(ep.set, dst)
				return
			}
		}
		mux := http.NewServeMux()
		mux.Handle(path, h)
		eps = append(eps, &endpoint{addr: addr, mux: mux, set: []*string{dst}})
	}
	add(s.metrics, "/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg}), &s.mAddr)
	add(s.health, "/healthz", http.HandlerFunc(s.healthzHandler), &s.hAddr)
	for _, ep := range eps {
		ln, err := net.Listen("tcp", ep.addr)
		if err != nil {
			for _, l := range s.listeners {
				_ = l.Close()
			}
			s.listeners = nil
			return fmt.Errorf("listen on %s: %w", ep.addr, err)
		}
		for _, dst := range ep.set {
			*dst = ln.Addr().String()
		}
		s.listeners = append(s.listeners, ln)
		s.srvs = append(s.srvs, &http.Server{Handler: ep.mux, ReadHeaderTimeout: readHeaderTimeout})
	}
	return nil
}

func (s *servers) serve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, srv := range s.srvs {
		ln := s.listeners[i]
		s.wg.Go(func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("HTTP server failed", "addr", ln.Addr().String(), "err", err)
			}
		})
	}
}

func (s *servers) shutdown(ctx context.Context) error {
	s.mu.Lock()
	srvs := s.srvs
	s.mu.Unlock()
	var errs []error
	for _, srv := range srvs {
		if err := srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP server: shutdown: %w", err))
		}
	}
	s.wg.Wait()
	return errors.Join(errs...)
}

func (s *servers) metricsAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mAddr
}

func (s *servers) healthAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hAddr
}
