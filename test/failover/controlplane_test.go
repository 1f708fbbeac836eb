package failover

import (
	"context"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	kprofoperator "github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// Leader election of the control plane fault tests: a leader that cannot renew for
// longer than the renew deadline gives up leading and exits, by design (client-go
// cannot tell a partition from an outage). These outages are shorter than it.
var rideOutFlags = []string{
	"--leader-elect-lease-duration", "240s",
	"--leader-elect-renew-deadline", "200s",
	"--leader-elect-retry-period", "2s",
}

// scheduledCluster starts a simulated cluster with the operator's namespace and n
// annotated pods in namespace ns, each served by a real sample app, and a config
// capturing them every interval into the operator's profiles directory.
func scheduledCluster(t *testing.T, ns string, n int) (*testenv.Cluster, client.Client, *profilingv1alpha1.ProfilingConfig, func(name string)) {
	t.Helper()
	ctx := context.Background()
	c := testenv.StartCluster(t, testenv.ClusterOptions{})
	cl, err := client.New(c.Config, client.Options{Scheme: kprofoperator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: operatorNamespace}}); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	addPod := func(name string) {
		p := c.CreatePod(t, testenv.PodSpec{Namespace: ns, Name: name,
			Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)},
			Containers:  []testenv.ContainerSpec{{Name: "main", Port: port}}})
		testenv.StartSampleApp(t, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
	}
	for i := range n {
		addPod(fmt.Sprintf("api-%d", i))
	}
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "every"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: int32(interval / time.Second)},
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	if err := cl.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	return c, cl, pc, addPod
}

// TestAPIServerRestartIsRiddenOut stops kube-apiserver and etcd under a running
// operator (the leader) for longer than a capture interval and starts them again on
// the same address and data: the operator keeps its process, captures every pod while
// the API server is down, counts those captures in status once it is back, and its
// watches work again (a pod created after the restart is captured).
func TestAPIServerRestartIsRiddenOut(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, cl, pc, addPod := scheduledCluster(t, "outage", 2)
	o := newOperator(t, "a", c.Kubeconfig, rideOutFlags...)
	o.start(t)
	waitLeader(t, cl, o, time.Minute)
	testenv.Eventually(t, 2*interval, func() (bool, string) {
		for _, pod := range []string{"api-0", "api-1"} {
			if len(of(o.stored(t), pod, "schedule")) == 0 {
				return false, pod + " not captured yet"
			}
		}
		return true, ""
	})

	down := time.Now()
	c.StopControlPlane(t)
	t.Logf("kube-apiserver and etcd stopped in %s", time.Since(down).Round(time.Millisecond))
	// While it is down, the schedule goes on: every pod is captured again.
	testenv.Eventually(t, 2*interval, func() (bool, string) {
		for _, pod := range []string{"api-0", "api-1"} {
			if ms := of(o.stored(t), pod, "schedule"); ms[len(ms)-1].CapturedAt.Before(down) {
				return false, pod + " not captured since the control plane went down"
			}
		}
		return true, ""
	})
	if o.exited() {
		t.Fatal("the operator exited while the control plane was down")
	}
	restart := time.Now()
	c.StartControlPlane(t)
	up := time.Now()
	t.Logf("control plane down for %s (restart %s)", up.Sub(down).Round(time.Millisecond), up.Sub(restart).Round(time.Millisecond))

	t.Run("the operator is the same process and counts what it captured meanwhile", func(t *testing.T) {
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			if o.exited() {
				return false, "the operator exited"
			}
			var got profilingv1alpha1.ProfilingConfig
			if err := cl.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return false, err.Error()
			}
			stored := of(o.stored(t), "", "schedule")
			if got.Status.TotalProfiles != int64(len(stored)) {
				return false, fmt.Sprintf("totalProfiles = %d, %d stored", got.Status.TotalProfiles, len(stored))
			}
			if got.Status.LastProfileTime == nil || got.Status.LastProfileTime.Time.Before(down.Truncate(time.Second)) {
				return false, fmt.Sprintf("lastProfileTime = %v, before the outage began at %s", got.Status.LastProfileTime, down)
			}
			if cond := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionCapturing); cond == nil || cond.Status != metav1.ConditionTrue {
				return false, fmt.Sprintf("Capturing = %+v", cond)
			}
			return true, ""
		})
	})
	t.Run("its watches work again: a pod created after the restart is captured", func(t *testing.T) {
		addPod("api-late")
		testenv.Eventually(t, interval+10*time.Second, func() (bool, string) {
			if len(of(o.stored(t), "api-late", "schedule")) == 0 {
				return false, "api-late not captured"
			}
			return true, ""
		})
		if leads, err := o.leads(); err != nil || !leads {
			t.Errorf("the operator leads: %v (%v)", leads, err)
		}
	})
}

// throttler is an HTTP proxy in front of kube-apiserver that answers every request
// with 429 Too Many Requests and Retry-After while it throttles, as API priority and
// fairness does under load.
type throttler struct {
	srv        *httptest.Server
	until      atomic.Int64 // Unix nanoseconds; throttling while now is before it
	requests   atomic.Int64 // every request
	throttled  atomic.Int64 // answered 429
	retryAfter int          // seconds
}

func startThrottler(t *testing.T, cfg *rest.Config, retryAfter int) *throttler {
	t.Helper()
	upstream, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ErrorLog:      log.New(io.Discard, "", 0),
	}
	th := &throttler{retryAfter: retryAfter}
	th.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		th.requests.Add(1)
		if time.Now().UnixNano() < th.until.Load() {
			th.throttled.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Retry-After", strconv.Itoa(th.retryAfter))
			w.WriteHeader(http.StatusTooManyRequests)
			_, _ = io.WriteString(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too many requests, please try again later","reason":"TooManyRequests","code":429}`)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	th.srv.EnableHTTP2 = true
	th.srv.StartTLS()
	t.Cleanup(th.srv.Close)
	return th
}

// throttle answers 429 for d from now.
func (th *throttler) throttle(d time.Duration) { th.until.Store(time.Now().Add(d).UnixNano()) }

// kubeconfig writes a kubeconfig that reaches kube-apiserver through the proxy (which
// authenticates upstream as the test's admin).
func (th *throttler) kubeconfig(t *testing.T) string {
	t.Helper()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: th.srv.Certificate().Raw})
	return writeKubeconfig(t, &rest.Config{Host: th.srv.URL, TLSClientConfig: rest.TLSClientConfig{CAData: caPEM}})
}

// TestThrottleByTheAPIServerIsBackedOffAndCapturesGoOn puts the operator behind a proxy
// that answers every request with 429 and Retry-After for longer than a capture
// interval: the operator keeps leading and capturing every pod, its requests meanwhile
// stay few (it waits as told instead of retrying at once), and once the throttling ends
// status counts every capture.
func TestThrottleByTheAPIServerIsBackedOffAndCapturesGoOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, cl, pc, _ := scheduledCluster(t, "throttled", 2)
	th := startThrottler(t, c.Config, 2)
	o := newOperator(t, "a", th.kubeconfig(t), rideOutFlags...)
	o.start(t)
	waitLeader(t, cl, o, time.Minute)
	testenv.Eventually(t, 2*interval, func() (bool, string) {
		for _, pod := range []string{"api-0", "api-1"} {
			if len(of(o.stored(t), pod, "schedule")) == 0 {
				return false, pod + " not captured yet"
			}
		}
		return true, ""
	})

	const window = interval + 15*time.Second
	began := time.Now()
	before := th.requests.Load()
	th.throttle(window)
	testenv.Eventually(t, window, func() (bool, string) {
		for _, pod := range []string{"api-0", "api-1"} {
			if ms := of(o.stored(t), pod, "schedule"); ms[len(ms)-1].CapturedAt.Before(began) {
				return false, pod + " not captured since the throttling began"
			}
		}
		return true, ""
	})
	testenv.Eventually(t, window, func() (bool, string) {
		if time.Since(began) < window {
			return false, "still throttling"
		}
		return true, ""
	})
	during := th.requests.Load() - before
	rate := float64(during) / window.Seconds()
	t.Logf("%d requests (%d answered 429) in %s of throttling: %.1f/s", during, th.throttled.Load(), window, rate)
	t.Run("the operator waits as told: few requests while throttled", func(t *testing.T) {
		if th.throttled.Load() == 0 {
			t.Fatal("no request was throttled: the test shows nothing")
		}
		// Each client waits Retry-After (2 s) between attempts: the manager's few
		// clients (lease, informers, status writes, metrics) make a handful a second.
		if rate > 10 {
			t.Errorf("%.1f requests/s while throttled with Retry-After: %d s", rate, th.retryAfter)
		}
		if o.exited() {
			t.Fatal("the operator exited while throttled")
		}
	})
	t.Run("status counts every capture once the throttling ends", func(t *testing.T) {
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			var got profilingv1alpha1.ProfilingConfig
			if err := cl.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return false, err.Error()
			}
			stored := of(o.stored(t), "", "schedule")
			if got.Status.TotalProfiles != int64(len(stored)) {
				return false, fmt.Sprintf("totalProfiles = %d, %d stored", got.Status.TotalProfiles, len(stored))
			}
			return true, ""
		})
		if leads, err := o.leads(); err != nil || !leads {
			t.Errorf("the operator leads: %v (%v)", leads, err)
		}
	})
}
