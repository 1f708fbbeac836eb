package portforward

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	httpstreamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
	pfconst "k8s.io/apimachinery/pkg/util/portforward"
	"k8s.io/client-go/rest"
	clientpf "k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/websocket"
	streamhttp "k8s.io/streaming/pkg/httpstream"
)

const (
	// pingPeriod keeps an idle port-forward connection alive through load
	// balancers, as kubectl does.
	pingPeriod = 10 * time.Second
	// maxUpgradeErrorBytes limits how much of a refused upgrade's body is read.
	maxUpgradeErrorBytes = 64 << 10
	// tcpKeepAlive is the keep-alive of the TCP connection to the API server.
	tcpKeepAlive = 30 * time.Second
)

// Protocol names which upgrade a port-forward connection used.
const (
	protocolWebsocket = "websocket" // SPDY tunnelled over websocket (API servers >= 1.31)
	protocolSPDY      = "spdy"
)

// upgrader opens port-forward connections to pods through the API server: first SPDY
// tunnelled over a websocket, the protocol API servers since 1.31 prefer; on an
// upgrade failure (an older server, a proxy without websockets, RBAC granting only
// "create", which a websocket GET does not satisfy on servers before 1.35), plain SPDY.
// Once the fallback succeeded, plain SPDY is tried first.
type upgrader struct {
	cfg        *rest.Config
	base       *url.URL
	log        *slog.Logger
	preferSPDY atomic.Bool
}

func newUpgrader(cfg *rest.Config, log *slog.Logger) (*upgrader, error) {
	base, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("API server URL %q: %w", cfg.Host, err)
	}
	// Fail now, not on the first capture, if TLS or credentials are unusable.
	if _, err := rest.TLSConfigFor(cfg); err != nil {
		return nil, fmt.Errorf("API server TLS config: %w", err)
	}
	return &upgrader{cfg: cfg, base: base, log: log}, nil
}

// portForwardURL is .../api/v1/namespaces/NS/pods/NAME/portforward, under the path
// prefix of the configured host, if any.
func (u *upgrader) portForwardURL(namespace, name string) *url.URL {
	pfURL := *u.base
	pfURL.Path = path.Join("/", u.base.Path, "api/v1/namespaces", namespace, "pods", name, "portforward")
	pfURL.RawPath = ""
	return &pfURL
}

// connect opens a port-forward connection to the pod. ctx bounds the upgrade only;
// the connection outlives it.
func (u *upgrader) connect(ctx context.Context, namespace, name string) (httpstream.Connection, string, error) {
	pfURL := u.portForwardURL(namespace, name)
	if u.preferSPDY.Load() {
		conn, err := u.spdy(ctx, pfURL)
		return conn, protocolSPDY, err
	}
	conn, wsErr := u.websocket(ctx, pfURL)
	if wsErr == nil {
		return conn, protocolWebsocket, nil
	}
	if !isUpgradeFailure(wsErr) || ctx.Err() != nil {
		return nil, "", fmt.Errorf("websocket upgrade: %w", wsErr)
	}
	u.log.Debug("websocket port-forward refused, falling back to SPDY", "namespace", namespace, "pod", name, "err", wsErr)
	conn, err := u.spdy(ctx, pfURL)
	switch {
	case err != nil && err.Error() == wsErr.Error():
		return nil, "", fmt.Errorf("websocket and SPDY upgrades: %w", err)
	case err != nil:
		// Report both: the SPDY error is usually the more telling (it needs only
		// "create"), but a websocket-only problem must stay visible.
		return nil, "", fmt.Errorf("SPDY upgrade: %w (after websocket upgrade: %w)", err, wsErr)
	}
	u.preferSPDY.Store(true)
	return conn, protocolSPDY, nil
}

// websocket upgrades GET .../portforward to SPDY tunnelled over a websocket.
func (u *upgrader) websocket(ctx context.Context, pfURL *url.URL) (httpstream.Connection, error) {
	rt, holder, err := websocket.RoundTripperFor(u.cfg) // one per connection: holder keeps it
	if err != nil {
		return nil, fmt.Errorf("websocket round tripper: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, pfURL.String(), nil)
	if err != nil {
		return nil, err
	}
	// The websocket dialer applies ctx's deadline to the whole handshake and clears it after.
	wsConn, err := websocket.Negotiate(rt, holder, req, pfconst.WebsocketsSPDYTunnelingPortForwardV1)
	if err != nil {
		return nil, err
	}
	conn, err := httpstreamspdy.NewClientConnectionWithPings(clientpf.NewTunnelingConnection("client", wsConn), pingPeriod)
	if err != nil {
		_ = wsConn.Close()
		return nil, fmt.Errorf("SPDY over websocket: %w", err)
	}
	return conn, nil
}

// spdy upgrades POST .../portforward to SPDY. It dials the API server itself
// (through rest.Config.Dial when set, never through an HTTP proxy) so that ctx's
// deadline bounds the whole handshake, response included, which client-go's SPDY
// round tripper does not do.
func (u *upgrader) spdy(ctx context.Context, pfURL *url.URL) (httpstream.Connection, error) {
	tlsConfig, err := rest.TLSConfigFor(u.cfg)
	if err != nil {
		return nil, fmt.Errorf("API server TLS config: %w", err)
	}
	if tlsConfig == nil && pfURL.Scheme == "https" {
		// Without a TLS config the SPDY dialer would skip verification.
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	dial := u.cfg.Dial
	if dial == nil {
		dial = (&net.Dialer{KeepAlive: tcpKeepAlive}).DialContext
	}
	var raw net.Conn // set by DialContext, which the round trip calls synchronously
	dialTransport := &http.Transport{
		TLSClientConfig: tlsConfig,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if deadline, ok := ctx.Deadline(); ok {
				_ = c.SetDeadline(deadline)
			}
			raw = c
			return c, nil
		},
	}
	spdyRT, err := httpstreamspdy.NewRoundTripperWithConfig(httpstreamspdy.RoundTripperConfig{
		PingPeriod:       pingPeriod,
		UpgradeTransport: dialTransport,
	})
	if err != nil {
		return nil, fmt.Errorf("SPDY round tripper: %w", err)
	}
	rt, err := rest.HTTPWrappersForConfig(u.cfg, spdyRT)
	if err != nil {
		return nil, fmt.Errorf("API server credentials: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, pfURL.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set(httpstream.HeaderProtocolVersion, pfconst.PortForwardV1Name)
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		err := responseError(resp)
		_ = resp.Body.Close()
		if raw != nil {
			_ = raw.Close()
		}
		return nil, &httpstream.UpgradeFailureError{Cause: err}
	}
	if raw != nil {
		_ = raw.SetDeadline(time.Time{})
	}
	conn, err := spdyRT.NewConnection(resp)
	if err != nil {
		if raw != nil {
			_ = raw.Close()
		}
		return nil, err
	}
	if p := resp.Header.Get(httpstream.HeaderProtocolVersion); p != pfconst.PortForwardV1Name {
		_ = conn.Close()
		return nil, fmt.Errorf("API server chose stream protocol %q, want %q", p, pfconst.PortForwardV1Name)
	}
	return conn, nil
}

// responseError reads (at most maxUpgradeErrorBytes of) a refused upgrade and
// returns the API server's Status as an *apierrors.StatusError when it sent one.
func responseError(resp *http.Response) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpgradeErrorBytes))
	if err != nil {
		return fmt.Errorf("%s (reading the response: %w)", resp.Status, err)
	}
	var status metav1.Status
	if json.Unmarshal(body, &status) == nil && status.Kind == "Status" {
		if status.Code == 0 {
			status.Code = int32(resp.StatusCode)
		}
		return &apierrors.StatusError{ErrStatus: status}
	}
	if msg := strings.TrimSpace(string(body)); msg != "" {
		return fmt.Errorf("%s: %s", resp.Status, msg)
	}
	return errors.New(resp.Status)
}

// isUpgradeFailure reports whether the API server (or something in front of it)
// refused the upgrade, as opposed to not being reachable: then another protocol may work.
func isUpgradeFailure(err error) bool {
	var a *httpstream.UpgradeFailureError
	var s *streamhttp.UpgradeFailureError
	return errors.As(err, &a) || errors.As(err, &s) || httpstream.IsHTTPSProxyError(err)
}
