package portforward

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"k8s.io/apimachinery/pkg/util/httpstream"
)

// newTestTransport is NewTransport with connect in place of the API server.
func newTestTransport(t *testing.T, connect connectFunc, idle time.Duration) (*http.Transport, *pool) {
	t.Helper()
	p := newPool(connect, 10*time.Second, idle, slog.New(slog.DiscardHandler))
	tr, err := transportFor(&dialer{pool: p, dialTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr, p
}

func pprofPort(t *testing.T, srvURL string) (int, string) {
	t.Helper()
	_, portStr, err := net.SplitHostPort(strings.TrimPrefix(srvURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(portStr)
	return port, strings.TrimPrefix(srvURL, "http://")
}

// fetchHeap GETs the heap profile of the pod and parses it.
func fetchHeap(ctx context.Context, client *http.Client, namespace, name string, port int) error {
	url := fmt.Sprintf("http://%s:%d/debug/pprof/heap", Host(namespace, name), port)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s: %s", resp.Status, body)
	}
	if _, err := profile.Parse(bytes.NewReader(body)); err != nil {
		return fmt.Errorf("parse heap profile (%d bytes): %w", len(body), err)
	}
	return nil
}

func TestTransportFetchesAProfileThroughAForwardedStream(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	tr, _ := newTestTransport(t, k.connect, time.Minute)

	if err := fetchHeap(t.Context(), &http.Client{Transport: tr}, "prod", "api.v2-0", port); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(k.pods, ","); got != "prod/api.v2-0" {
		t.Fatalf("connected to %q, want prod/api.v2-0", got)
	}
}

func TestConcurrentRequestsToOnePodShareOneConnection(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	tr, _ := newTestTransport(t, k.connect, time.Minute)
	client := &http.Client{Transport: tr}

	const n = 8
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { errs <- fetchHeap(t.Context(), client, "ns", "pod", port) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if got := k.connects.Load(); got != 1 {
		t.Fatalf("%d port-forward connections for %d concurrent requests to one pod, want 1", got, n)
	}
}

func TestEachPodGetsItsOwnConnection(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	tr, _ := newTestTransport(t, k.connect, time.Minute)
	client := &http.Client{Transport: tr}
	for _, pod := range []string{"a", "b", "a"} {
		if err := fetchHeap(t.Context(), client, "ns", pod, port); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(k.pods, ","); got != "ns/a,ns/b" {
		t.Fatalf("connected to %q, want ns/a,ns/b", got)
	}
}

func TestAKubeletFailureIsReportedWithPodAndPort(t *testing.T) {
	long := strings.Repeat("x", 10<<10)
	tests := []struct {
		name     string
		behavior portBehavior
		want     []string
		maxLen   int
	}{
		{
			name:     "nothing listens on the port",
			behavior: portBehavior{report: "error forwarding port 6060 to pod 1234: connection refused"},
			want:     []string{"port-forward to pod ns/web port 6060", "connection refused"},
		},
		{
			name:     "the report is longer than 4 KiB",
			behavior: portBehavior{report: long},
			want:     []string{"port-forward to pod ns/web port 6060", "[truncated]"},
			maxLen:   maxErrorBytes + 200,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := newFakeKubelet(t, map[int]portBehavior{6060: tt.behavior})
			tr, _ := newTestTransport(t, k.connect, time.Minute)
			err := fetchHeap(t.Context(), &http.Client{Transport: tr}, "ns", "web", 6060)
			if err == nil {
				t.Fatal("fetch succeeded, want the kubelet's error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			var re *remoteError
			if !errors.As(err, &re) {
				t.Errorf("error %q is not the kubelet's report", err)
			}
			if tt.maxLen > 0 && len(err.Error()) > tt.maxLen {
				t.Errorf("error is %d bytes, want at most %d", len(err.Error()), tt.maxLen)
			}
		})
	}
}

func TestTransportRefusesHostsThatAreNotPods(t *testing.T) {
	k := newFakeKubelet(t, nil)
	tr, _ := newTestTransport(t, k.connect, time.Minute)
	client := &http.Client{Transport: tr}
	for _, url := range []string{
		"http://127.0.0.1:6060/debug/pprof/heap",
		"http://example.com/debug/pprof/heap",
		"http://Web.default.pod.kprof.invalid:6060/debug/pprof/heap",
	} {
		t.Run(url, func(t *testing.T) {
			resp, err := client.Get(url)
			if err == nil {
				_ = resp.Body.Close()
				t.Fatal("request succeeded, want a refusal")
			}
			if !strings.Contains(err.Error(), "refusing a host that does not name a pod") {
				t.Fatalf("error %q does not say the host is refused", err)
			}
		})
	}
	if got := k.connects.Load(); got != 0 {
		t.Fatalf("%d port-forward connections, want none", got)
	}
}

func TestABrokenConnectionIsReplacedOnTheNextRequest(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	var first chanConn
	tr, p := newTestTransport(t, first.record(k.connect), time.Minute)
	client := &http.Client{Transport: tr}

	if err := fetchHeap(t.Context(), client, "ns", "pod", port); err != nil {
		t.Fatal(err)
	}
	k.breakConnections()
	<-first.get().CloseChan()
	waitForPoolEmpty(p)

	if err := fetchHeap(t.Context(), client, "ns", "pod", port); err != nil {
		t.Fatalf("after the connection broke: %v", err)
	}
	if got := k.connects.Load(); got != 2 {
		t.Fatalf("%d port-forward connections, want 2 (one redial)", got)
	}
}

func TestADeadConnectionStillInThePoolIsRedialed(t *testing.T) {
	echo := startEcho(t)
	k := newFakeKubelet(t, map[int]portBehavior{7: {addr: echo}})
	p := newPool(k.connect, 10*time.Second, time.Minute, slog.New(slog.DiscardHandler))
	c, err := p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Close()
	// Close the client side under the pool, as a connection that died before the
	// pool noticed: creating streams on it fails and the dial must redial.
	p.mu.Lock()
	pc := p.pods[podKey{"ns", "pod"}]
	p.mu.Unlock()
	_ = pc.conn.Close()

	c, err = p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatalf("dial after the connection died: %v", err)
	}
	defer func() { _ = c.Close() }()
	if got := k.connects.Load(); got != 2 {
		t.Fatalf("%d port-forward connections, want 2", got)
	}
	echoOnce(t, c, "after redial")
}

func TestAnIdleConnectionIsClosed(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	var conn chanConn
	tr, p := newTestTransport(t, conn.record(k.connect), time.Millisecond)

	if err := fetchHeap(t.Context(), &http.Client{Transport: tr}, "ns", "pod", port); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections() // the last forwarded connection ends: the idle timer starts
	<-conn.get().CloseChan()
	waitForPoolEmpty(p)
}

func TestAConnectionInUseIsNotClosedWhenIdleTimeoutPasses(t *testing.T) {
	echo := startEcho(t)
	k := newFakeKubelet(t, map[int]portBehavior{7: {addr: echo}})
	p := newPool(k.connect, 10*time.Second, time.Nanosecond, slog.New(slog.DiscardHandler))
	c, err := p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	// With a 1ns idle timeout, any idle timer armed while the connection is used
	// (by the dial, then by c) would close it at once.
	echoOnce(t, c, "in use")
	p.mu.Lock()
	_, ok := p.pods[podKey{"ns", "pod"}]
	p.mu.Unlock()
	if !ok {
		t.Fatal("connection in use was dropped from the pool")
	}
}

func TestConnDeadlinesApplyToPendingReads(t *testing.T) {
	echo := startEcho(t)
	k := newFakeKubelet(t, map[int]portBehavior{7: {addr: echo}})
	p := newPool(k.connect, 10*time.Second, time.Minute, slog.New(slog.DiscardHandler))
	c, err := p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()

	// A Read blocked on a silent peer returns once the deadline is moved into the past.
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	if err := c.SetReadDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := <-readErr; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read after the deadline passed = %v, want os.ErrDeadlineExceeded", err)
	}
	var ne net.Error
	if err := c.SetWriteDeadline(time.Unix(1, 0)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Write after the deadline passed = %v, want a timeout", err)
	}
	// Cleared, the connection works again.
	if err := c.SetDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}
	echoOnce(t, c, "after the deadline was cleared")
}

func TestCloseUnblocksAReadAndIsIdempotent(t *testing.T) {
	echo := startEcho(t)
	k := newFakeKubelet(t, map[int]portBehavior{7: {addr: echo}})
	p := newPool(k.connect, 10*time.Second, time.Minute, slog.New(slog.DiscardHandler))
	c, err := p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatal(err)
	}
	readErr := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		readErr <- err
	}()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-readErr; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read during Close = %v, want net.ErrClosed", err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	p.mu.Lock()
	users := p.pods[podKey{"ns", "pod"}].users
	p.mu.Unlock()
	if users != 0 {
		t.Fatalf("pod connection has %d users after Close, want 0", users)
	}
}

func TestConnSurfacesTheKubeletReportOnClose(t *testing.T) {
	k := newFakeKubelet(t, map[int]portBehavior{7: {report: "no such port"}})
	p := newPool(k.connect, 10*time.Second, time.Minute, slog.New(slog.DiscardHandler))
	c, err := p.dial(t.Context(), "ns", "pod", 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(c); err == nil || !strings.Contains(err.Error(), "no such port") {
		t.Fatalf("Read = %v, want the kubelet's report", err)
	}
	if err := c.Close(); err == nil || !strings.Contains(err.Error(), "port-forward to pod ns/pod port 7: no such port") {
		t.Fatalf("Close = %v, want the kubelet's report", err)
	}
}

func TestADialThatCannotConnectNamesThePod(t *testing.T) {
	failing := func(ctx context.Context, namespace, name string) (httpstream.Connection, string, error) {
		return nil, "", errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	tr, _ := newTestTransport(t, failing, time.Minute)
	err := fetchHeap(t.Context(), &http.Client{Transport: tr}, "ns", "pod", 6060)
	if err == nil || !strings.Contains(err.Error(), "port-forward to pod ns/pod port 6060: open port-forward connection: dial tcp") {
		t.Fatalf("error %v does not name the pod, port and what failed", err)
	}
}

// echoOnce writes msg to c and reads it back.
func echoOnce(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// chanConn records the first connection a connectFunc opened.
type chanConn struct {
	once sync.Once
	c    chan httpstream.Connection
}

func (r *chanConn) init() { r.once.Do(func() { r.c = make(chan httpstream.Connection, 1) }) }

func (r *chanConn) record(connect connectFunc) connectFunc {
	r.init()
	return func(ctx context.Context, namespace, name string) (httpstream.Connection, string, error) {
		conn, p, err := connect(ctx, namespace, name)
		if err == nil {
			select {
			case r.c <- conn:
			default:
			}
		}
		return conn, p, err
	}
}

func (r *chanConn) get() httpstream.Connection {
	r.init()
	c := <-r.c
	r.c <- c
	return c
}

// waitForPoolEmpty waits until the pool forgot every connection; the pool does so
// right after a connection's CloseChan closes.
func waitForPoolEmpty(p *pool) {
	for {
		p.mu.Lock()
		n := len(p.pods)
		p.mu.Unlock()
		if n == 0 {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
