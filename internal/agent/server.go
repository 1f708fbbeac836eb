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

	"github.com/kprof/kprof/internal/flight"
)

// readHeaderTimeout bounds a slow client's request headers.
const readHeaderTimeout = 10 * time.Second

// serversConfig lists the endpoints: an address of "0" or "" disables one.
type serversConfig struct {
	metrics, health, flight string
	reg                     *prometheus.Registry
	check                   func() error
	flightHandler           http.Handler // nil: no flight recorder endpoint
	log                     *slog.Logger
}

// servers serve /metrics, /healthz and the flight recorder's endpoint, on one
// listener where addresses are equal.
type servers struct {
	serversConfig
	// base is every request's context; cancelled at shutdown, it ends the
	// flight recorder's waits.
	base       context.Context
	cancelBase context.CancelFunc

	mu        sync.Mutex
	srvs      []*http.Server
	listeners []net.Listener
	mAddr     string
	hAddr     string
	fAddr     string
	wg        sync.WaitGroup
}

func newServers(cfg serversConfig) *servers {
	base, cancel := context.WithCancel(context.Background())
	return &servers{serversConfig: cfg, base: base, cancelBase: cancel}
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
		if addr == "0" || addr == "" || h == nil {
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
	if s.flightHandler != nil {
		add(s.flight, flight.PathPrefix, s.flightHandler, &s.fAddr)
	}
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
		s.srvs = append(s.srvs, &http.Server{Handler: ep.mux, ReadHeaderTimeout: readHeaderTimeout,
			BaseContext: func(net.Listener) context.Context { return s.base }})
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
	s.cancelBase()
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

func (s *servers) flightAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fAddr
}

func (s *servers) healthAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hAddr
}
