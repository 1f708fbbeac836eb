package testenv

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// portForward is one entry of a kwok PortForward's spec.forwards.
type portForward struct {
	port int
	host string
	to   int
}

// sentinel is a loopback listener that answers every connection with sentinelReply. Each
// update of a pod's kwok PortForward adds a fresh pod port forwarded to it: once that port
// answers through kube-apiserver, kwok has loaded that version of the PortForward.
type sentinel struct {
	ln   net.Listener
	port int
}

const (
	sentinelReply = "kprof-testenv-sentinel\n"
	// sentinelPortBase counts down: sentinel pod ports are 65535, 65534, ... (a pod port, never
	// listened on; tests forward lower ports).
	sentinelPortBase = 65535
)

func startSentinel() (*sentinel, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("port-forward sentinel: %w", err)
	}
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = io.WriteString(conn, sentinelReply)
			_ = conn.Close()
		}
	}()
	return &sentinel{ln: ln, port: ln.Addr().(*net.TCPAddr).Port}, nil
}

// ForwardPodPort makes pods/portforward to the pod's podPort (through kube-apiserver, to kwok as
// the node's kubelet) reach targetAddr ("host:port"), by a kwok PortForward object named like the
// pod. It returns once kwok forwards it. Calls for more ports of the same pod add to its
// PortForward; a repeated port is forwarded to the latest target.
func (c *Cluster) ForwardPodPort(t testing.TB, ns, pod string, podPort int, targetAddr string) {
	t.Helper()
	host, portStr, err := net.SplitHostPort(targetAddr)
	if err != nil {
		t.Fatalf("testenv: ForwardPodPort target %q: %v", targetAddr, err)
	}
	to, err := strconv.Atoi(portStr)
	if err != nil || podPort <= 0 || podPort >= sentinelPortBase-1000 {
		t.Fatalf("testenv: ForwardPodPort %s/%s port %d to %q: bad port", ns, pod, podPort, targetAddr)
	}

	c.pfMu.Lock()
	defer c.pfMu.Unlock()
	if c.pfSentinel == nil {
		s, err := startSentinel()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		c.pfSentinel = s
		t.Cleanup(func() { _ = s.ln.Close() })
	}
	key := ns + "/" + pod
	var forwards []portForward
	for _, f := range c.forwards[key] {
		if f.port != podPort {
			forwards = append(forwards, f)
		}
	}
	forwards = append(forwards, portForward{port: podPort, host: host, to: to})
	c.forwards[key] = forwards
	sentinelPort := sentinelPortBase - c.pfVersion
	c.pfVersion++

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	spec := append(slices.Clone(forwards), portForward{port: sentinelPort, host: "127.0.0.1", to: c.pfSentinel.port})
	if err := c.applyPortForward(ctx, ns, pod, spec); err != nil {
		t.Fatalf("testenv: ForwardPodPort %s/%s: %v", ns, pod, err)
	}
	if err := c.waitForwarded(ctx, ns, pod, sentinelPort); err != nil {
		t.Fatalf("testenv: ForwardPodPort %s/%s: %v", ns, pod, err)
	}
}

// applyPortForward creates or replaces the kwok PortForward for the pod.
func (c *Cluster) applyPortForward(ctx context.Context, ns, pod string, forwards []portForward) error {
	var list []any
	for _, f := range forwards {
		list = append(list, map[string]any{
			"ports":  []any{int64(f.port)},
			"target": map[string]any{"address": f.host, "port": int64(f.to)},
		})
	}
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kwok.x-k8s.io/v1alpha1")
	u.SetKind("PortForward")
	err := c.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, u)
	switch {
	case apierrors.IsNotFound(err):
		u.SetNamespace(ns)
		u.SetName(pod)
		u.Object["spec"] = map[string]any{"forwards": list}
		err = c.Client.Create(ctx, u)
	case err == nil:
		u.Object["spec"] = map[string]any{"forwards": list}
		err = c.Client.Update(ctx, u)
	}
	if err != nil {
		return fmt.Errorf("apply kwok PortForward: %w", err)
	}
	return nil
}

// waitForwarded port-forwards to the pod's sentinel port through kube-apiserver until the
// sentinel answers.
func (c *Cluster) waitForwarded(ctx context.Context, ns, pod string, port int) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exited, err := c.kwok.exited(); exited {
			return false, fmt.Errorf("kwok exited: %v", err)
		}
		last = c.probePortForward(ctx, ns, pod, port)
		return last == nil, nil
	})
	if err != nil {
		return fmt.Errorf("wait until kwok forwards port %d (last: %v): %w", port, last, err)
	}
	return nil
}

// probePortForward opens one port-forward stream pair to pod:port through kube-apiserver and
// expects sentinelReply on the data stream; otherwise it returns what the error stream said.
func (c *Cluster) probePortForward(ctx context.Context, ns, pod string, port int) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := c.dialPortForward(ns, pod)
	if err != nil {
		return err
	}
	defer conn.Close()
	go func() {
		<-ctx.Done()
		conn.Close()
	}()

	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("create error stream: %w", err)
	}
	_ = errStream.Close() // nothing to send on it
	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		return fmt.Errorf("create data stream: %w", err)
	}
	buf := make([]byte, len(sentinelReply))
	if _, err := io.ReadFull(data, buf); err == nil && string(buf) == sentinelReply {
		return nil
	}
	msg, _ := io.ReadAll(io.LimitReader(errStream, 4<<10))
	if len(msg) == 0 {
		msg = []byte("no reply and no error")
	}
	if ctx.Err() != nil {
		return fmt.Errorf("port-forward %s/%s:%d: %w", ns, pod, port, ctx.Err())
	}
	return errors.New(string(msg))
}

// dialPortForward upgrades a pods/portforward request through kube-apiserver to SPDY.
func (c *Cluster) dialPortForward(ns, pod string) (httpstream.Connection, error) {
	rt, upgrader, err := spdy.RoundTripperFor(c.Config)
	if err != nil {
		return nil, fmt.Errorf("spdy round tripper: %w", err)
	}
	u := c.clientset.CoreV1().RESTClient().Post().
		Resource("pods").Namespace(ns).Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
	if err != nil {
		return nil, fmt.Errorf("dial pods/portforward %s/%s: %w", ns, pod, err)
	}
	return conn, nil
}
