package threshold

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
)

const podMetricsPath = "/apis/metrics.k8s.io/v1beta1/namespaces/ns/pods"

// podMetricsList is what metrics-server serves for kubectl top pod -n ns.
const podMetricsList = `{
  "kind": "PodMetricsList",
  "apiVersion": "metrics.k8s.io/v1beta1",
  "metadata": {},
  "items": [
    {
      "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web"}},
      "timestamp": "2026-03-01T12:00:00Z",
      "window": "15.012s",
      "containers": [
        {"name": "app", "usage": {"cpu": "930123456n", "memory": "512Mi"}},
        {"name": "proxy", "usage": {"cpu": "2m", "memory": "20548Ki"}}
      ]
    },
    {
      "metadata": {"name": "web-2", "namespace": "ns", "labels": {"app": "web"}},
      "timestamp": "2026-03-01T12:00:05Z",
      "window": "10s",
      "containers": [{"name": "app", "usage": {"cpu": "0", "memory": "0"}}]
    }
  ]
}`

// apiServer serves the metrics API path with handler and records the requests.
type apiServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests []*http.Request
}

func newAPIServer(t *testing.T, handler http.HandlerFunc) *apiServer {
	t.Helper()
	s := &apiServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests = append(s.requests, r.Clone(context.Background()))
		s.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *apiServer) source(t *testing.T, timeout time.Duration) *MetricsSource {
	t.Helper()
	src, err := NewMetricsSource(&rest.Config{Host: s.URL}, timeout)
	if err != nil {
		t.Fatalf("NewMetricsSource: %v", err)
	}
	return src
}

func serveJSON(code int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
	}
}

func TestMetricsSourceReadsPodMetricsThroughTheAPIPath(t *testing.T) {
	srv := newAPIServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != podMetricsPath {
			http.NotFound(w, r)
			return
		}
		serveJSON(http.StatusOK, podMetricsList)(w, r)
	})
	sel := labels.SelectorFromSet(labels.Set{"app": "web"})
	got, err := srv.source(t, 0).PodUsage(context.Background(), "ns", sel)
	if err != nil {
		t.Fatalf("PodUsage: %v", err)
	}

	srv.mu.Lock()
	req := srv.requests[0]
	srv.mu.Unlock()
	if req.Method != http.MethodGet || req.URL.Path != podMetricsPath || req.URL.Query().Get("labelSelector") != "app=web" {
		t.Errorf("request = %s %s, want GET %s?labelSelector=app=web", req.Method, req.URL, podMetricsPath)
	}
	if len(got) != 2 {
		t.Fatalf("got %d pods, want 2: %+v", len(got), got)
	}
	web1 := got["web-1"]
	if web1.Namespace != "ns" || web1.Name != "web-1" ||
		!web1.Timestamp.Equal(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)) || web1.Window != 15012*time.Millisecond {
		t.Errorf("web-1 = %+v", web1)
	}
	wantContainers := []struct{ name, cpu, mem string }{{"app", "930123456n", "512Mi"}, {"proxy", "2m", "20548Ki"}}
	if len(web1.Containers) != len(wantContainers) {
		t.Fatalf("web-1 containers = %+v", web1.Containers)
	}
	for i, w := range wantContainers {
		c := web1.Containers[i]
		if c.Name != w.name || c.CPU.Cmp(resource.MustParse(w.cpu)) != 0 || c.Memory.Cmp(resource.MustParse(w.mem)) != 0 {
			t.Errorf("container %d = %s cpu %s memory %s, want %s cpu %s memory %s",
				i, c.Name, c.CPU.String(), c.Memory.String(), w.name, w.cpu, w.mem)
		}
	}
	if web2 := got["web-2"]; len(web2.Containers) != 1 || !web2.Containers[0].CPU.IsZero() {
		t.Errorf("web-2 = %+v", web2)
	}
}

func TestMetricsSourceWithoutSelectorListsTheWholeNamespace(t *testing.T) {
	srv := newAPIServer(t, serveJSON(http.StatusOK, podMetricsList))
	if _, err := srv.source(t, 0).PodUsage(context.Background(), "ns", nil); err != nil {
		t.Fatalf("PodUsage: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if q := srv.requests[0].URL.Query(); q.Has("labelSelector") {
		t.Errorf("labelSelector = %q, want none", q.Get("labelSelector"))
	}
}

func TestMetricsSourceWithTheNothingSelectorAsksNothing(t *testing.T) {
	srv := newAPIServer(t, serveJSON(http.StatusOK, podMetricsList))
	got, err := srv.source(t, 0).PodUsage(context.Background(), "ns", labels.Nothing())
	if err != nil || len(got) != 0 {
		t.Fatalf("PodUsage = %v, %v; want no pods, no error", got, err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.requests) != 0 {
		t.Errorf("%d requests, want none", len(srv.requests))
	}
}

func TestMetricsSourceClassifiesErrors(t *testing.T) {
	const notFound = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
		`"message":"the server could not find the requested resource","reason":"NotFound","details":{},"code":404}`
	const forbidden = `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",` +
		`"message":"pods.metrics.k8s.io is forbidden","reason":"Forbidden","details":{"group":"metrics.k8s.io","kind":"pods"},"code":403}`
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()

	tests := []struct {
		name            string
		handler         http.HandlerFunc // nil: connect to a closed port
		ctx             func() context.Context
		wantReason      string
		wantUnavailable bool
	}{
		{name: "a 404 on the group means the metrics API is not installed",
			handler: serveJSON(http.StatusNotFound, notFound), wantReason: MetricsNotInstalled, wantUnavailable: true},
		{name: "a 503 from the aggregator means metrics-server is unavailable",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "service unavailable", http.StatusServiceUnavailable)
			}, wantReason: MetricsServiceUnavailable, wantUnavailable: true},
		{name: "a server that does not answer within the timeout is a timeout",
			handler:    func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			wantReason: MetricsTimeout, wantUnavailable: true},
		{name: "a 504 from the aggregator is a timeout",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "gateway timeout", http.StatusGatewayTimeout)
			}, wantReason: MetricsTimeout, wantUnavailable: true},
		{name: "a 500 from metrics-server means it is failing",
			handler: func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "unable to fetch metrics", http.StatusInternalServerError)
			}, wantReason: MetricsServerError, wantUnavailable: true},
		{name: "a refused connection is a connect failure",
			wantReason: MetricsConnectFailed, wantUnavailable: true},
		{name: "a 403 is a permission problem, not an unavailable API",
			handler: serveJSON(http.StatusForbidden, forbidden), wantReason: MetricsForbidden},
		{name: "a caller that gives up is neither a timeout nor an unavailable API",
			handler: serveJSON(http.StatusOK, podMetricsList),
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			}, wantReason: MetricsCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := closedURL
			if tt.handler != nil {
				host = newAPIServer(t, tt.handler).URL
			}
			src, err := NewMetricsSource(&rest.Config{Host: host}, 200*time.Millisecond)
			if err != nil {
				t.Fatalf("NewMetricsSource: %v", err)
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			_, err = src.PodUsage(ctx, "ns", labels.Everything())
			if err == nil {
				t.Fatal("PodUsage succeeded, want an error")
			}
			if got := MetricsErrorReason(err); got != tt.wantReason {
				t.Errorf("MetricsErrorReason = %s, want %s (error: %v)", got, tt.wantReason, err)
			}
			if got := IsMetricsUnavailable(err); got != tt.wantUnavailable {
				t.Errorf("IsMetricsUnavailable = %v, want %v (error: %v)", got, tt.wantUnavailable, err)
			}
			if !strings.Contains(err.Error(), `list pod metrics in namespace "ns"`) {
				t.Errorf("error %q does not say what was being done", err)
			}
		})
	}
}

func TestMetricsErrorReasonOfOtherErrors(t *testing.T) {
	if got := MetricsErrorReason(nil); got != "" {
		t.Errorf("MetricsErrorReason(nil) = %q, want empty", got)
	}
	if got := MetricsErrorReason(errors.New("boom")); got != MetricsError {
		t.Errorf("MetricsErrorReason(other) = %q, want %s", got, MetricsError)
	}
	if IsMetricsUnavailable(errors.New("boom")) {
		t.Error("an unclassified error counts as metrics unavailable")
	}
}

func TestNewMetricsSourceRejectsBadArguments(t *testing.T) {
	tests := []struct {
		name    string
		cfg     *rest.Config
		timeout time.Duration
		wantErr string
	}{
		{"a nil rest config is rejected", nil, 0, "rest config is nil"},
		{"a negative timeout is rejected", &rest.Config{Host: "https://127.0.0.1:1"}, -time.Second, "timeout -1s is negative"},
		{"a zero timeout takes the default", &rest.Config{Host: "https://127.0.0.1:1"}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := NewMetricsSource(tt.cfg, tt.timeout)
			checkErr(t, err, tt.wantErr)
			if err == nil && src.timeout != DefaultMetricsTimeout {
				t.Errorf("timeout = %s, want %s", src.timeout, DefaultMetricsTimeout)
			}
		})
	}
}
