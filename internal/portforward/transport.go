package portforward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/kprof/kprof/internal/capture"
)

// NewTransport returns an http.Transport for URLs whose host is Host(namespace, name):
// it dials the URL's port of that pod through the API server's pods/portforward.
// Its settings (timeouts, header size limit, no proxy, no transparent decompression,
// idle connections) are those of capture.DefaultHTTPClient. It refuses any other
// host, so it cannot reach a real address by mistake. For https URLs, the TLS server
// name is the synthetic host: give the transport a TLSClientConfig that fits.
func NewTransport(cfg Config) (*http.Transport, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	up, err := newUpgrader(cfg.RESTConfig, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("port-forward transport: %w", err)
	}
	d := &dialer{
		pool:        newPool(up.connect, cfg.DialTimeout, cfg.IdleTimeout, cfg.Logger),
		dialTimeout: cfg.DialTimeout,
	}
	return transportFor(d)
}

// NewHTTPClient returns the capture engine's HTTPClient in port-forward mode:
// NewTransport's transport, and capture.DefaultHTTPClient's redirect policy (a few,
// only to the same scheme and host). Like that client it has no overall Timeout:
// the engine sets a deadline on every request.
func NewHTTPClient(cfg Config) (*http.Client, error) {
	tr, err := NewTransport(cfg)
	if err != nil {
		return nil, err
	}
	client := capture.DefaultHTTPClient()
	client.Transport = tr
	return client, nil
}

func transportFor(d *dialer) (*http.Transport, error) {
	base, ok := capture.DefaultHTTPClient().Transport.(*http.Transport)
	if !ok {
		return nil, errors.New("port-forward transport: capture.DefaultHTTPClient has no *http.Transport to copy settings from")
	}
	tr := base.Clone()
	tr.Proxy = nil
	tr.DialContext = d.DialContext
	tr.DialTLSContext = nil
	return tr, nil
}

// dialer resolves pod hosts to forwarded connections.
type dialer struct {
	pool        *pool
	dialTimeout time.Duration
}

// DialContext dials addr, "<Host(namespace, name)>:<port>", through port-forward.
func (d *dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("port-forward dial %s %s: only tcp can be forwarded", network, addr)
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("port-forward dial %s: %w", addr, err)
	}
	namespace, name, err := ParseHost(host)
	if err != nil {
		return nil, fmt.Errorf("port-forward dial %s: refusing a host that does not name a pod: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return nil, fmt.Errorf("port-forward dial %s: port %q is not a number 1-65535", addr, portStr)
	}
	ctx, cancel := context.WithTimeout(ctx, d.dialTimeout)
	defer cancel()
	c, err := d.pool.dial(ctx, namespace, name, port)
	if err != nil {
		return nil, fmt.Errorf("port-forward to pod %s/%s port %d: %w", namespace, name, port, err)
	}
	return c, nil
}
