package portforward

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	httpstreamspdy "k8s.io/apimachinery/pkg/util/httpstream/spdy"
)

// fakeKubelet is the server side of the port-forward stream protocol, as the kubelet
// speaks it behind the API server: it pairs error and data streams by request ID and
// connects the data stream to the address of the port, or writes the failure to the
// error stream. It stands in for a kubelet until the real one (kwok) runs in tests,
// and shows failures a real one cannot be made to show on demand.
type fakeKubelet struct {
	t *testing.T
	// ports maps a pod port to a TCP address, or to a message the kubelet reports.
	ports map[int]portBehavior

	connects atomic.Int32 // connections opened through connect
	mu       sync.Mutex
	pods     []string // namespace/name of each connect
	pairs    map[string]*streamPair
	servers  []httpstream.Connection // server sides, to break them
}

type portBehavior struct {
	addr   string // forward to this address
	report string // else report this on the error stream
}

type streamPair struct {
	errs, data             httpstream.Stream
	errsReplied, dataReady <-chan struct{}
}

func newFakeKubelet(t *testing.T, ports map[int]portBehavior) *fakeKubelet {
	return &fakeKubelet{t: t, ports: ports, pairs: make(map[string]*streamPair)}
}

// handleStream is the server connection's new-stream handler.
func (k *fakeKubelet) handleStream(s httpstream.Stream, replySent <-chan struct{}) error {
	h := s.Headers()
	id := h.Get(corev1.PortForwardRequestIDHeader)
	k.mu.Lock()
	p := k.pairs[id]
	if p == nil {
		p = &streamPair{}
		k.pairs[id] = p
	}
	switch h.Get(corev1.StreamType) {
	case corev1.StreamTypeError:
		p.errs, p.errsReplied = s, replySent
	case corev1.StreamTypeData:
		p.data, p.dataReady = s, replySent
	default:
		k.mu.Unlock()
		return fmt.Errorf("unexpected stream type %q", h.Get(corev1.StreamType))
	}
	complete := p.errs != nil && p.data != nil
	if complete {
		delete(k.pairs, id)
	}
	k.mu.Unlock()
	if complete {
		port, _ := strconv.Atoi(h.Get(corev1.PortHeader))
		go k.forward(p, port)
	}
	return nil
}

func (k *fakeKubelet) forward(p *streamPair, port int) {
	<-p.errsReplied
	<-p.dataReady
	// As the kubelet: the error stream is closed before the data stream.
	defer func() { _ = p.data.Close() }()
	defer func() { _ = p.errs.Close() }()
	b, ok := k.ports[port]
	if !ok {
		b.report = fmt.Sprintf("error forwarding port %d to pod 1234, uid : failed to connect to localhost:%d: connection refused", port, port)
	}
	if b.addr == "" {
		_, _ = io.WriteString(p.errs, b.report)
		return
	}
	conn, err := net.Dial("tcp", b.addr)
	if err != nil {
		_, _ = io.WriteString(p.errs, err.Error())
		return
	}
	defer func() { _ = conn.Close() }()
	go func() {
		_, _ = io.Copy(conn, p.data)
		_ = conn.(*net.TCPConn).CloseWrite()
	}()
	_, _ = io.Copy(p.data, conn)
}

// connect is a connectFunc: a SPDY connection over loopback TCP to this kubelet.
func (k *fakeKubelet) connect(ctx context.Context, namespace, name string) (httpstream.Connection, string, error) {
	k.connects.Add(1)
	k.mu.Lock()
	k.pods = append(k.pods, namespace+"/"+name)
	k.mu.Unlock()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	defer func() { _ = ln.Close() }()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var d net.Dialer
	clientSide, err := d.DialContext(ctx, "tcp", ln.Addr().String())
	if err != nil {
		return nil, "", err
	}
	serverSide, ok := <-accepted
	if !ok {
		_ = clientSide.Close()
		return nil, "", fmt.Errorf("fake kubelet: accept failed")
	}
	server, err := httpstreamspdy.NewServerConnection(serverSide, k.handleStream)
	if err != nil {
		return nil, "", err
	}
	k.mu.Lock()
	k.servers = append(k.servers, server)
	k.mu.Unlock()
	k.t.Cleanup(func() { _ = server.Close() })
	client, err := httpstreamspdy.NewClientConnection(clientSide)
	if err != nil {
		return nil, "", err
	}
	return client, "fake", nil
}

// breakConnections closes the server side of every connection so far.
func (k *fakeKubelet) breakConnections() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, s := range k.servers {
		_ = s.Close()
	}
}

// upgradeHandler serves POST .../portforward as the API server does with SPDY.
func (k *fakeKubelet) upgradeHandler(w http.ResponseWriter, req *http.Request) {
	if _, err := httpstream.Handshake(req, w, []string{"portforward.k8s.io"}); err != nil {
		return
	}
	k.connects.Add(1)
	conn := httpstreamspdy.NewResponseUpgrader().UpgradeResponse(w, req, k.handleStream)
	if conn == nil {
		return
	}
	k.mu.Lock()
	k.servers = append(k.servers, conn)
	k.mu.Unlock()
	<-conn.CloseChan()
}

// startPprof serves net/http/pprof on loopback, as a profiled pod does.
func startPprof(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// startEcho serves a TCP echo on loopback.
func startEcho(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer func() { _ = c.Close() }()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}
