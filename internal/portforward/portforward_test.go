package portforward

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/kprof/kprof/internal/logging/logtest"
	"github.com/kprof/kprof/internal/testenv"
)

// TestCaptureThroughTheAPIServer fetches profiles through a real kube-apiserver's
// pods/portforward, with kwok as the pod's kubelet forwarding to an in-process pprof server.
func TestCaptureThroughTheAPIServer(t *testing.T) {
	c := testenv.StartCluster(t, testenv.ClusterOptions{WithoutMetricsServer: true})
	const ns, pod, port = "prod", "api.v2-0", 6060
	_, pprofAddr := pprofPort(t, startPprof(t).URL)
	c.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: pod, Containers: []testenv.ContainerSpec{{Port: port}}})
	c.ForwardPodPort(t, ns, pod, port, pprofAddr)

	// newClient returns a port-forward client as identity (the admin when "") and
	// what it logs about the connections it opens.
	newClient := func(t *testing.T, identity string) (*http.Client, *connLog) {
		cfg := rest.CopyConfig(c.Config)
		if identity != "" {
			cfg.Impersonate = rest.ImpersonationConfig{UserName: identity}
		}
		log := &connLog{}
		client, err := NewHTTPClient(Config{RESTConfig: cfg, Logger: log.logger()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(client.CloseIdleConnections)
		return client, log
	}

	t.Run("a heap profile fetched through port-forward parses as pprof", func(t *testing.T) {
		client, log := newClient(t, "")
		if err := fetchHeap(t.Context(), client, ns, pod, port); err != nil {
			t.Fatal(err)
		}
		if got := log.protocols(); strings.Join(got, ",") != protocolWebsocket {
			t.Errorf("connections opened with %q, want one websocket (kube-apiserver %s supports it)", got, testenv.K8sVersion)
		}
	})

	t.Run("concurrent requests to one pod share one port-forward connection", func(t *testing.T) {
		client, log := newClient(t, "")
		const n = 8
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() { errs <- fetchHeap(t.Context(), client, ns, pod, port) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if got := log.protocols(); len(got) != 1 {
			t.Errorf("%d port-forward connections (%q) for %d concurrent requests, want 1", len(got), got, n)
		}
	})

	t.Run("a pod that does not exist is a clear error", func(t *testing.T) {
		client, _ := newClient(t, "")
		err := fetchHeap(t.Context(), client, ns, "missing", port)
		if err == nil {
			t.Fatal("fetch from a missing pod succeeded")
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "port-forward to pod prod/missing port 6060: open port-forward connection: pod prod/missing not found") {
			t.Errorf("error %q does not say the pod is not found", err)
		}
		if !apierrors.IsNotFound(err) {
			t.Errorf("error %q does not carry the API server's NotFound", err)
		}
	})

	t.Run("a port the pod does not serve reports the kubelet's error", func(t *testing.T) {
		client, _ := newClient(t, "")
		err := fetchHeap(t.Context(), client, ns, pod, 7070)
		if err == nil {
			t.Fatal("fetch from an unserved port succeeded")
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), "port-forward to pod prod/api.v2-0 port 7070") {
			t.Errorf("error %q does not name the pod and port", err)
		}
		var re *remoteError
		if !errors.As(err, &re) {
			t.Errorf("error %q is not what the kubelet reported", err)
		}
	})

	t.Run("an identity without pods/portforward is told which permission is missing", func(t *testing.T) {
		client, _ := newClient(t, "kprof-test-nobody")
		err := fetchHeap(t.Context(), client, ns, pod, port)
		if err == nil {
			t.Fatal("fetch without permission succeeded")
		}
		t.Logf("error: %v", err)
		if !strings.Contains(err.Error(), `missing permission: RBAC must grant this identity verb "create" on resource "pods/portforward" in namespace "prod"`) {
			t.Errorf("error %q does not say which permission is missing", err)
		}
		if !apierrors.IsForbidden(err) {
			t.Errorf("error %q does not carry the API server's Forbidden", err)
		}
	})

	rbacTests := []struct {
		name         string
		user         string
		verbs        []string
		wantProtocol string
	}{
		{"an identity with create only on pods/portforward falls back to SPDY", "kprof-test-create", []string{"create"}, protocolSPDY},
		{"an identity with get and create on pods/portforward uses the websocket", "kprof-test-get-create", []string{"get", "create"}, protocolWebsocket},
	}
	for _, tt := range rbacTests {
		t.Run(tt.name, func(t *testing.T) {
			grant(t, c, ns, tt.user, tt.verbs)
			client, log := newClient(t, tt.user)
			if err := fetchHeap(t.Context(), client, ns, pod, port); err != nil {
				t.Fatal(err)
			}
			if got := log.protocols(); strings.Join(got, ",") != tt.wantProtocol {
				t.Errorf("connections opened with %q, want %s", got, tt.wantProtocol)
			}
		})
	}
}

// grant gives user verbs on pods/portforward in namespace ns.
func grant(t *testing.T, c *testenv.Cluster, ns, user string, verbs []string) {
	t.Helper()
	ctx := context.Background()
	role := &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: verbs}},
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: user},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: user},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	if err := c.Client.Create(ctx, role); err != nil {
		t.Fatalf("create role: %v", err)
	}
	if err := c.Client.Create(ctx, binding); err != nil {
		t.Fatalf("create role binding: %v", err)
	}
	// The authorizer learns of the binding from a watch: wait until it allows every verb.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, verb := range verbs {
		err := wait.PollUntilContextCancel(ctx, 50*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			review := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user,
				ResourceAttributes: &authorizationv1.ResourceAttributes{
					Namespace: ns, Verb: verb, Resource: "pods", Subresource: "portforward",
				},
			}}
			if err := c.Client.Create(ctx, review); err != nil {
				return false, err
			}
			return review.Status.Allowed, nil
		})
		if err != nil {
			t.Fatalf("wait until %s may %s pods/portforward: %v", user, verb, err)
		}
	}
}

// connLog records the protocol of each port-forward connection a client opened,
// from its logs.
type connLog struct {
	mu    sync.Mutex
	opens []string
}

func (l *connLog) logger() *slog.Logger {
	return logtest.Func(slog.LevelDebug, func(line string) {
		if !strings.Contains(line, `msg="port-forward connection opened"`) {
			return
		}
		_, after, _ := strings.Cut(line, " protocol=")
		protocol, _, _ := strings.Cut(after, " ")
		l.mu.Lock()
		l.opens = append(l.opens, protocol)
		l.mu.Unlock()
	})
}

func (l *connLog) protocols() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.opens...)
}
