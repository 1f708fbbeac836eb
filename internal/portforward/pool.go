package portforward

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// connectFunc opens a port-forward connection to a pod; ctx bounds the upgrade only.
// It returns the protocol used, for logs.
type connectFunc func(ctx context.Context, namespace, name string) (httpstream.Connection, string, error)

type podKey struct{ namespace, name string }

// pool keeps one port-forward connection per pod and opens a pair of streams on it
// (error + data, one request ID) per forwarded connection. A connection is closed
// once unused for idleTimeout, dropped when it breaks and opened again on the next dial.
type pool struct {
	connect     connectFunc
	dialTimeout time.Duration
	idleTimeout time.Duration
	log         *slog.Logger
	requestID   atomic.Uint64

	mu   sync.Mutex
	pods map[podKey]*podConn
}

// podConn is one port-forward connection to a pod, shared by the forwarded
// connections to it.
type podConn struct {
	key   podKey
	ready chan struct{} // closed once the upgrade ended; then exactly one of conn, err is set
	conn  httpstream.Connection
	err   error

	// Guarded by pool.mu.
	users   int // forwarded connections using conn, and dials waiting for it
	idle    *time.Timer
	idleGen int  // invalidates an idle timer that already fired
	gone    bool // no longer in pool.pods: failed, broken or closed
}

func newPool(connect connectFunc, dialTimeout, idleTimeout time.Duration, log *slog.Logger) *pool {
	return &pool{
		connect:     connect,
		dialTimeout: dialTimeout,
		idleTimeout: idleTimeout,
		log:         log,
		pods:        make(map[podKey]*podConn),
	}
}

// dial returns a connection to port of the pod. The caller bounds ctx.
func (p *pool) dial(ctx context.Context, namespace, name string, port int) (*streamConn, error) {
	key := podKey{namespace, name}
	for attempt := 1; ; attempt++ {
		pc, err := p.acquire(ctx, key)
		if err != nil {
			return nil, err
		}
		c, err := p.openStreams(ctx, pc, port)
		if err == nil {
			return c, nil
		}
		p.release(pc)
		if ctx.Err() != nil {
			return nil, err
		}
		// The connection is broken (or the kubelet refuses streams): drop it so that
		// no later dial uses it either, and redial once.
		p.discard(pc, err)
		if attempt == 2 {
			return nil, err
		}
	}
}

// acquire returns the pod's connection, opening it if there is none, counted as
// used until release.
func (p *pool) acquire(ctx context.Context, key podKey) (*podConn, error) {
	p.mu.Lock()
	pc := p.pods[key]
	if pc == nil {
		pc = &podConn{key: key, ready: make(chan struct{})}
		p.pods[key] = pc
		go p.open(pc)
	}
	pc.users++
	p.stopIdleLocked(pc)
	p.mu.Unlock()

	select {
	case <-pc.ready:
	case <-ctx.Done():
		p.release(pc)
		return nil, fmt.Errorf("open port-forward connection: %w", ctx.Err())
	}
	if pc.err != nil {
		p.release(pc)
		return nil, pc.err
	}
	return pc, nil
}

// open upgrades pc's connection. It does not use a dialer's ctx: a dial that gives
// up must not fail the others waiting for the same connection. dialTimeout bounds it.
func (p *pool) open(pc *podConn) {
	ctx, cancel := context.WithTimeout(context.Background(), p.dialTimeout)
	defer cancel()
	conn, protocol, err := p.connect(ctx, pc.key.namespace, pc.key.name)
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("open port-forward connection: timed out after %s: %w", p.dialTimeout, err)
	} else if err != nil {
		err = fmt.Errorf("open port-forward connection: %w", explainUpgradeError(err, pc.key.namespace, pc.key.name))
	}

	p.mu.Lock()
	if err != nil {
		pc.err = err
		p.removeLocked(pc)
	} else {
		pc.conn = conn
		if pc.users == 0 {
			p.armIdleLocked(pc)
		}
	}
	p.mu.Unlock()
	close(pc.ready)

	if err != nil {
		p.log.Debug("port-forward connection failed", "namespace", pc.key.namespace, "pod", pc.key.name, "err", err)
		return
	}
	p.log.Debug("port-forward connection opened", "namespace", pc.key.namespace, "pod", pc.key.name, "protocol", protocol)
	go func() {
		<-conn.CloseChan()
		p.mu.Lock()
		p.removeLocked(pc)
		p.mu.Unlock()
		p.log.Debug("port-forward connection closed", "namespace", pc.key.namespace, "pod", pc.key.name)
	}()
}

// release ends one use of pc; the last one arms the idle timer.
func (p *pool) release(pc *podConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pc.users--
	if pc.users == 0 && pc.conn != nil && !pc.gone {
		p.armIdleLocked(pc)
	}
}

// discard closes pc's connection, which failed, and forgets it.
func (p *pool) discard(pc *podConn, cause error) {
	p.mu.Lock()
	wasIn := !pc.gone
	p.removeLocked(pc)
	p.mu.Unlock()
	if wasIn {
		p.log.Debug("dropping port-forward connection", "namespace", pc.key.namespace, "pod", pc.key.name, "err", cause)
	}
	_ = pc.conn.Close()
}

func (p *pool) armIdleLocked(pc *podConn) {
	p.stopIdleLocked(pc)
	gen := pc.idleGen
	pc.idle = time.AfterFunc(p.idleTimeout, func() {
		p.mu.Lock()
		if pc.idleGen != gen || pc.users > 0 || pc.gone {
			p.mu.Unlock()
			return
		}
		p.removeLocked(pc)
		p.mu.Unlock()
		p.log.Debug("closing idle port-forward connection", "namespace", pc.key.namespace, "pod", pc.key.name)
		_ = pc.conn.Close()
	})
}

func (p *pool) stopIdleLocked(pc *podConn) {
	pc.idleGen++
	if pc.idle != nil {
		pc.idle.Stop()
		pc.idle = nil
	}
}

func (p *pool) removeLocked(pc *podConn) {
	if p.pods[pc.key] == pc {
		delete(p.pods, pc.key)
	}
	pc.gone = true
	p.stopIdleLocked(pc)
}

// openStreams creates the error and data streams of one forwarded connection, as
// the kubelet expects them: same port and request ID, error stream first.
func (p *pool) openStreams(ctx context.Context, pc *podConn, port int) (*streamConn, error) {
	id := strconv.FormatUint(p.requestID.Add(1), 10)
	type result struct {
		errs, data httpstream.Stream
		err        error
	}
	done := make(chan result, 1)
	go func() {
		h := http.Header{}
		h.Set(corev1.StreamType, corev1.StreamTypeError)
		h.Set(corev1.PortHeader, strconv.Itoa(port))
		h.Set(corev1.PortForwardRequestIDHeader, id)
		errs, err := pc.conn.CreateStream(h)
		if err != nil {
			done <- result{err: fmt.Errorf("create error stream: %w", err)}
			return
		}
		_ = errs.Close() // nothing is written to it: half-close now
		h.Set(corev1.StreamType, corev1.StreamTypeData)
		data, err := pc.conn.CreateStream(h)
		if err != nil {
			_ = errs.Reset()
			pc.conn.RemoveStreams(errs)
			done <- result{err: fmt.Errorf("create data stream: %w", err)}
			return
		}
		done <- result{errs: errs, data: data}
	}()

	// CreateStream waits for the kubelet's reply without a ctx (up to 30s), even on
	// a closed connection: do not wait for it then, and clean up what it returns.
	abandon := func() {
		go func() {
			if r := <-done; r.err == nil {
				_ = r.data.Reset()
				_ = r.errs.Reset()
				pc.conn.RemoveStreams(r.data, r.errs)
			}
		}()
	}
	var r result
	select {
	case r = <-done:
	case <-pc.conn.CloseChan():
		abandon()
		return nil, errors.New("create streams: the port-forward connection closed")
	case <-ctx.Done():
		abandon()
		return nil, fmt.Errorf("create streams: %w", ctx.Err())
	}
	if r.err != nil {
		return nil, r.err
	}
	addr := podAddr{namespace: pc.key.namespace, name: pc.key.name, port: port}
	return newStreamConn(r.data, r.errs, addr, func() {
		pc.conn.RemoveStreams(r.data, r.errs)
		p.release(pc)
	}), nil
}
