package portforward

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
)

// fakeAPIServer serves .../pods/NAME/portforward over TLS with a bearer token, and
// records the requests it got as "METHOD PATH".
type fakeAPIServer struct {
	srv      *httptest.Server
	mu       sync.Mutex
	requests []string
}

func startFakeAPIServer(t *testing.T, portforward http.HandlerFunc) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		f.mu.Unlock()
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			writeStatus(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/portforward") {
			http.NotFound(w, r)
			return
		}
		portforward(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAPIServer) restConfig(pathPrefix string) *rest.Config {
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	return &rest.Config{
		Host:            f.srv.URL + pathPrefix,
		BearerToken:     "t0ken",
		TLSClientConfig: rest.TLSClientConfig{CAData: ca},
	}
}

func (f *fakeAPIServer) got() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func writeStatus(w http.ResponseWriter, code int, reason metav1.StatusReason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: reason, Code: int32(code),
	})
}

func TestSPDYFallbackFetchesAProfileAndIsPreferredAfterwards(t *testing.T) {
	port, addr := pprofPort(t, startPprof(t).URL)
	k := newFakeKubelet(t, map[int]portBehavior{port: {addr: addr}})
	api := startFakeAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost { // an API server without websocket port-forward
			writeStatus(w, http.StatusBadRequest, metav1.StatusReasonBadRequest, "websocket upgrade not supported")
			return
		}
		k.upgradeHandler(w, r)
	})
	t.Cleanup(k.breakConnections) // ends the hijacked upgrade handlers

	client, err := NewHTTPClient(Config{RESTConfig: api.restConfig("/prefix")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(client.CloseIdleConnections)
	for _, pod := range []string{"web-0", "web-1"} {
		if err := fetchHeap(t.Context(), client, "prod", pod, port); err != nil {
			t.Fatalf("pod %s: %v", pod, err)
		}
	}
	want := []string{
		"GET /prefix/api/v1/namespaces/prod/pods/web-0/portforward",
		"POST /prefix/api/v1/namespaces/prod/pods/web-0/portforward",
		"POST /prefix/api/v1/namespaces/prod/pods/web-1/portforward",
	}
	if got := api.got(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("API server requests:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestARefusedPortForwardSaysWhatIsMissing(t *testing.T) {
	tests := []struct {
		name   string
		code   int
		reason metav1.StatusReason
		msg    string
		want   []string
		is     func(error) bool
	}{
		{
			name: "RBAC does not allow pods/portforward", code: http.StatusForbidden, reason: metav1.StatusReasonForbidden,
			msg:  `pods "web" is forbidden: User "system:serviceaccount:kprof:kprof" cannot create resource "pods/portforward" in API group "" in the namespace "prod"`,
			want: []string{"port-forward to pod prod/web port 6060", `verb "create" on resource "pods/portforward" in namespace "prod"`, `cannot create resource "pods/portforward"`},
			is:   apierrors.IsForbidden,
		},
		{
			name: "the pod does not exist", code: http.StatusNotFound, reason: metav1.StatusReasonNotFound,
			msg:  `pods "web" not found`,
			want: []string{"port-forward to pod prod/web port 6060", "pod prod/web not found"},
			is:   apierrors.IsNotFound,
		},
		{
			name: "the API server rejects the credentials", code: http.StatusUnauthorized, reason: metav1.StatusReasonUnauthorized,
			msg:  "Unauthorized",
			want: []string{"port-forward to pod prod/web port 6060", "rejected the credentials"},
			is:   apierrors.IsUnauthorized,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := startFakeAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
				writeStatus(w, tt.code, tt.reason, tt.msg)
			})
			client, err := NewHTTPClient(Config{RESTConfig: api.restConfig("")})
			if err != nil {
				t.Fatal(err)
			}
			err = fetchHeap(t.Context(), client, "prod", "web", 6060)
			if err == nil {
				t.Fatal("fetch succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if !tt.is(err) {
				t.Errorf("error %q does not carry the API server's status", err)
			}
			// Both protocols were tried before giving up.
			if got := strings.Join(api.got(), ","); got != "GET /api/v1/namespaces/prod/pods/web/portforward,POST /api/v1/namespaces/prod/pods/web/portforward" {
				t.Errorf("API server requests %q, want a websocket GET then a SPDY POST", got)
			}
		})
	}
}

func TestAnUpgradeThatGetsNoAnswerTimesOut(t *testing.T) {
	api := startFakeAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done() // accept the request, never answer
	})
	up, err := newUpgrader(api.restConfig(""), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for _, protocol := range []string{"websocket", "spdy"} {
		t.Run("over "+protocol, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
			defer cancel()
			u := up.portForwardURL("ns", "pod")
			var err error
			if protocol == "websocket" {
				_, err = up.websocket(ctx, u)
			} else {
				_, err = up.spdy(ctx, u)
			}
			if err == nil {
				t.Fatal("upgrade succeeded, want a timeout")
			}
			if isUpgradeFailure(err) {
				t.Fatalf("timeout %q counts as a refused upgrade: it would fall back instead of failing", err)
			}
		})
	}
}

func TestNewTransportValidatesItsConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"without a REST config", Config{}, "RESTConfig is required"},
		{"with a negative dial timeout", Config{RESTConfig: &rest.Config{Host: "https://127.0.0.1:6443"}, DialTimeout: -time.Second}, "DialTimeout -1s is negative"},
		{"with a negative idle timeout", Config{RESTConfig: &rest.Config{Host: "https://127.0.0.1:6443"}, IdleTimeout: -time.Second}, "IdleTimeout -1s is negative"},
		{"with an unusable CA", Config{RESTConfig: &rest.Config{Host: "https://127.0.0.1:6443", TLSClientConfig: rest.TLSClientConfig{CAData: []byte("not PEM")}}}, "TLS config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTransport(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewTransport error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestNewTransportKeepsTheCaptureClientSettings(t *testing.T) {
	tr, err := NewTransport(Config{RESTConfig: &rest.Config{Host: "https://127.0.0.1:6443"}})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Proxy != nil {
		t.Error("transport uses a proxy")
	}
	if !tr.DisableCompression {
		t.Error("transport decompresses transparently")
	}
	if tr.MaxResponseHeaderBytes == 0 || tr.TLSHandshakeTimeout == 0 || tr.IdleConnTimeout == 0 {
		t.Errorf("transport lost limits: header bytes %d, TLS handshake timeout %s, idle timeout %s",
			tr.MaxResponseHeaderBytes, tr.TLSHandshakeTimeout, tr.IdleConnTimeout)
	}
}

func TestNewHTTPClientRefusesRedirectsToOtherHosts(t *testing.T) {
	client, err := NewHTTPClient(Config{RESTConfig: &rest.Config{Host: "https://127.0.0.1:6443"}})
	if err != nil {
		t.Fatal(err)
	}
	first, _ := http.NewRequest(http.MethodGet, "http://"+Host("ns", "a")+":6060/debug/pprof/heap", nil)
	tests := []struct {
		name    string
		to      string
		wantErr bool
	}{
		{"to the same pod", "http://" + Host("ns", "a") + ":6060/debug/pprof/heap?x=1", false},
		{"to another pod", "http://" + Host("ns", "b") + ":6060/debug/pprof/heap", true},
		{"to a real host", "http://169.254.169.254/latest/meta-data", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			next, _ := http.NewRequest(http.MethodGet, tt.to, nil)
			err := client.CheckRedirect(next, []*http.Request{first})
			if (err != nil) != tt.wantErr {
				t.Fatalf("CheckRedirect = %v, want error %v", err, tt.wantErr)
			}
		})
	}
}
