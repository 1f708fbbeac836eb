package portforward

import (
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
)

const (
	// maxErrorBytes limits what is read from a forwarded connection's error stream.
	maxErrorBytes = 4 << 10
	// readChunk is the most one read of the data stream takes at once.
	readChunk = 32 << 10
	// writeChunk is the largest data frame written: SPDY frames are at most 16 MiB.
	writeChunk = 32 << 10
	// errorStreamWait is how long the end of the data stream waits for the error
	// stream to end, to report why the connection ended. The kubelet closes the error
	// stream first, so the wait is normally over at once.
	errorStreamWait = time.Second
)

// podAddr is the remote address of a forwarded connection.
type podAddr struct {
	namespace, name string
	port            int
}

func (a podAddr) Network() string { return "portforward" }
func (a podAddr) String() string {
	return a.namespace + "/" + a.name + ":" + strconv.Itoa(a.port)
}

// localAddr is the local address of every forwarded connection.
type localAddr struct{}

func (localAddr) Network() string { return "portforward" }
func (localAddr) String() string  { return "client" }

// remoteError is what the kubelet reported on a forwarded connection's error stream.
type remoteError struct {
	addr podAddr
	msg  string
}

func (e *remoteError) Error() string {
	return fmt.Sprintf("port-forward to pod %s/%s port %d: %s", e.addr.namespace, e.addr.name, e.addr.port, e.msg)
}

// streamConn is a net.Conn over the data stream of one forwarded connection. When
// the data stream ends or fails, Read and Write return what the kubelet reported on
// the error stream (for instance that nothing listens on the port), if anything;
// Close returns it too. Deadlines apply to pending Reads; a Write checks its deadline
// between frames, and Close interrupts it.
type streamConn struct {
	data, errs httpstream.Stream
	addr       podAddr
	release    func() // once, on Close

	readMu  sync.Mutex // serializes Reads, guards pending
	pending []byte
	writeMu sync.Mutex // serializes Writes

	readc    chan []byte   // from pump to Read
	readDone chan struct{} // closed when pump ended; then readErr is set
	readErr  error

	errDone   chan struct{} // closed when the error stream ended; then remoteErr is set
	remoteErr error

	readDeadline, writeDeadline deadline

	closeOnce sync.Once
	closed    chan struct{}
}

var _ net.Conn = (*streamConn)(nil)

func newStreamConn(data, errs httpstream.Stream, addr podAddr, release func()) *streamConn {
	c := &streamConn{
		data:          data,
		errs:          errs,
		addr:          addr,
		release:       release,
		readc:         make(chan []byte),
		readDone:      make(chan struct{}),
		errDone:       make(chan struct{}),
		closed:        make(chan struct{}),
		readDeadline:  makeDeadline(),
		writeDeadline: makeDeadline(),
	}
	go c.readErrorStream()
	go c.pump()
	return c
}

// readErrorStream reads the kubelet's report, at most maxErrorBytes of it.
func (c *streamConn) readErrorStream() {
	defer close(c.errDone)
	b, _ := io.ReadAll(io.LimitReader(c.errs, maxErrorBytes+1)) // a read error ends it like EOF: nothing reported
	truncated := len(b) > maxErrorBytes
	if truncated {
		b = b[:maxErrorBytes]
		_ = c.errs.Reset()
	}
	msg := strings.TrimSpace(strings.ToValidUTF8(string(b), "\uFFFD"))
	if msg == "" {
		return
	}
	if truncated {
		msg += " [truncated]"
	}
	c.remoteErr = &remoteError{addr: c.addr, msg: msg}
}

// reported returns the error stream's report if it has ended.
func (c *streamConn) reported() error {
	select {
	case <-c.errDone:
		return c.remoteErr
	default:
		return nil
	}
}

// pump moves the data stream to Read, so that Read can honour deadlines and Close.
func (c *streamConn) pump() {
	defer close(c.readDone)
	for {
		buf := make([]byte, readChunk)
		n, err := c.data.Read(buf)
		if n > 0 {
			select {
			case c.readc <- buf[:n]:
			case <-c.closed:
				c.readErr = net.ErrClosed
				return
			}
		}
		if err != nil {
			c.readErr = c.endOfData(err)
			return
		}
	}
}

// endOfData explains the end of the data stream with the error stream's report.
func (c *streamConn) endOfData(err error) error {
	t := time.NewTimer(errorStreamWait)
	defer t.Stop()
	select {
	case <-c.errDone:
		if c.remoteErr != nil {
			return c.remoteErr
		}
	case <-c.closed:
		return net.ErrClosed
	case <-t.C:
	}
	if err == io.EOF {
		return io.EOF
	}
	return fmt.Errorf("read from pod %s: %w", c.addr, err)
}

func (c *streamConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	errDone := c.errDone
	for len(c.pending) == 0 {
		select {
		case <-c.closed:
			return 0, net.ErrClosed
		default:
		}
		select {
		case b := <-c.readc:
			c.pending = b
		case <-c.readDone:
			return 0, c.readErr
		case <-errDone:
			if c.remoteErr != nil {
				return 0, c.remoteErr
			}
			errDone = nil // ended without a report: keep reading
		case <-c.readDeadline.wait():
			return 0, os.ErrDeadlineExceeded
		case <-c.closed:
			return 0, net.ErrClosed
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

func (c *streamConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	written := 0
	for len(p) > 0 {
		select {
		case <-c.closed:
			return written, net.ErrClosed
		case <-c.writeDeadline.wait():
			return written, os.ErrDeadlineExceeded
		default:
		}
		if err := c.reported(); err != nil {
			return written, err
		}
		chunk := p[:min(len(p), writeChunk)]
		if _, err := c.data.Write(chunk); err != nil {
			if rerr := c.reported(); rerr != nil {
				return written, rerr
			}
			return written, fmt.Errorf("write to pod %s: %w", c.addr, err)
		}
		written += len(chunk)
		p = p[len(chunk):]
	}
	return written, nil
}

// Close resets both streams and returns the error stream's report, if it came.
// Closing again does nothing.
func (c *streamConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		_ = c.data.Reset()
		_ = c.errs.Reset()
		c.release()
		err = c.reported()
	})
	return err
}

func (c *streamConn) LocalAddr() net.Addr  { return localAddr{} }
func (c *streamConn) RemoteAddr() net.Addr { return c.addr }

func (c *streamConn) SetDeadline(t time.Time) error {
	c.readDeadline.set(t)
	c.writeDeadline.set(t)
	return nil
}

func (c *streamConn) SetReadDeadline(t time.Time) error {
	c.readDeadline.set(t)
	return nil
}

func (c *streamConn) SetWriteDeadline(t time.Time) error {
	c.writeDeadline.set(t)
	return nil
}

// deadline is a channel closed when a settable point in time passes (as net.Pipe's).
type deadline struct {
	mu     *sync.Mutex
	timer  *time.Timer
	cancel chan struct{} // closed when the deadline passed
}

func makeDeadline() deadline {
	return deadline{mu: new(sync.Mutex), cancel: make(chan struct{})}
}

// set arms the deadline; the zero time removes it.
func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		<-d.cancel // the timer fired: wait for it to close cancel
	}
	d.timer = nil
	closed := isClosed(d.cancel)
	if t.IsZero() {
		if closed {
			d.cancel = make(chan struct{})
		}
		return
	}
	if dur := time.Until(t); dur > 0 {
		if closed {
			d.cancel = make(chan struct{})
		}
		cancel := d.cancel
		d.timer = time.AfterFunc(dur, func() { close(cancel) })
		return
	}
	if !closed {
		close(d.cancel)
	}
}

// wait returns a channel closed when the deadline has passed.
func (d *deadline) wait() chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cancel
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}
