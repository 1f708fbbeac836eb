package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	metricsclient "k8s.io/metrics/pkg/client/clientset/versioned"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ClusterOptions shape the simulated cluster StartCluster starts.
type ClusterOptions struct {
	// Nodes is the number of kwok nodes, named kwok-node-0..N-1 (default 1).
	Nodes int
	// MetricsResolution is metrics-server's --metric-resolution (default and minimum 10s).
	MetricsResolution time.Duration
	// WithoutMetricsServer leaves metrics.k8s.io unregistered, as on a cluster without
	// metrics-server (StartMetricsServer is then an error).
	WithoutMetricsServer bool
	// IntegrateUsage makes kwok's CPU counters the integral of the usage as set (SetUsage),
	// as a kernel's cpuacct is: kwok adds usage × time since the last read of a node's
	// /metrics/resource at each read, so with metrics-server's reads alone a usage present at
	// a scrape counts for the whole interval before it (a 10 s spike seen at a 60 s-apart
	// scrape as a minute of it). With IntegrateUsage every node's counters are read every
	// 250 ms, so metrics-server's rate of a short spike is what it would be on a real node.
	IntegrateUsage bool
}

// Cluster is a simulated cluster on loopback: kube-apiserver + etcd (envtest) with the
// aggregation layer on, kwok simulating nodes and pods, and a real metrics-server behind
// metrics.k8s.io. Everything stops when the test that started it ends.
type Cluster struct {
	Config     *rest.Config  // admin (system:masters)
	Client     client.Client // controller-runtime client with client-go's scheme
	Kubeconfig string        // path of a kubeconfig file for Config
	Nodes      []string      // node names, kwok-node-0..N-1

	dir       string
	env       *Env
	clientset kubernetes.Interface
	metrics   metricsclient.Interface
	kwok      *process
	kwokPort  int      // kwok's server: every node's kubelet endpoint
	ms        *process // nil WithoutMetricsServer

	// cgMu guards cgBurstable, the kubepods/burstable cgroups of Kubepods (linux).
	cgMu        sync.Mutex
	cgBurstable []string

	pfMu       sync.Mutex
	forwards   map[string][]portForward // "ns/pod" → forwards, see ForwardPodPort
	pfVersion  int
	pfSentinel *sentinel
}

// startTimeout bounds StartCluster and the restart of metrics-server.
const startTimeout = 2 * time.Minute

// StartCluster starts a simulated cluster for t and returns when nodes are Ready and (unless
// WithoutMetricsServer) metrics.k8s.io answers through kube-apiserver. Process logs are in
// t.TempDir(); their tails are printed when t fails.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	began := time.Now()
	checkClusterOptions(t, &opts)

	dir := t.TempDir()
	c := &Cluster{dir: dir, forwards: map[string][]portForward{}}
	cpLogPath := filepath.Join(dir, "control-plane.log")
	c.logTailsOnFailure(t, cpLogPath)
	kwokConfig := c.startControlPlane(t, cpLogPath)
	controlPlaneUp := time.Since(began)
	c.connect(t)

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	c.startKwokAndMetricsServer(ctx, t, kwokConfig, opts)
	for i := range opts.Nodes {
		name := fmt.Sprintf("kwok-node-%d", i)
		c.Nodes = append(c.Nodes, name)
		if err := c.Client.Create(ctx, kwokNode(name)); err != nil {
			t.Fatalf("testenv: create node %s: %v", name, err)
		}
	}
	if err := c.waitNodesReady(ctx); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	nodesReady := time.Since(began)
	if opts.IntegrateUsage {
		c.integrateUsage(t)
	}
	if c.ms != nil {
		if err := c.waitMetricsAPIStarting(ctx, t, dir, opts.MetricsResolution); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	t.Logf("testenv: cluster with %d node(s) ready in %s (control plane %s, nodes Ready %s, metrics.k8s.io %t)",
		opts.Nodes, time.Since(began).Round(time.Millisecond), controlPlaneUp.Round(time.Millisecond),
		nodesReady.Round(time.Millisecond), c.ms != nil)
	return c
}

// checkClusterOptions applies the defaults of opts and fails t on a bad option or
// a missing tool.
func checkClusterOptions(t testing.TB, opts *ClusterOptions) {
	t.Helper()
	if opts.Nodes <= 0 {
		opts.Nodes = 1
	}
	if opts.MetricsResolution == 0 {
		opts.MetricsResolution = 10 * time.Second
	}
	if opts.MetricsResolution < 10*time.Second {
		t.Fatalf("testenv: MetricsResolution %s is below metrics-server's minimum of 10s", opts.MetricsResolution)
	}
	if _, err := os.Stat(toolPath("kwok")); err != nil {
		t.Fatalf("testenv: kwok not installed at %s (run `make tools` or hack/install-tools.sh): %v", toolPath("kwok"), err)
	}
	if !opts.WithoutMetricsServer {
		if err := metricsServerInstalled(); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
}

// logTailsOnFailure prints the tails of the processes' logs when t fails. It is
// registered before any process starts, so it runs last: after they wrote their
// shutdown lines.
func (c *Cluster) logTailsOnFailure(t testing.TB, cpLogPath string) {
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		t.Logf("testenv: logs in %s", c.dir)
		for _, p := range []*process{c.kwok, c.ms} {
			if p != nil {
				t.Logf("testenv: %s log (tail):\n%s", p.name, p.logTail(6<<10))
			}
		}
		if b, err := os.ReadFile(cpLogPath); err == nil {
			t.Logf("testenv: kube-apiserver+etcd log (tail):\n%s", tail(b, 6<<10))
		}
	})
}

// startControlPlane starts kube-apiserver and etcd with the aggregation layer on and
// kwok's CRDs installed, logging to cpLogPath; it returns kwok's config file.
func (c *Cluster) startControlPlane(t testing.TB, cpLogPath string) (kwokConfig string) {
	t.Helper()
	fp, err := writeFrontProxyCerts(c.dir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	kwokConfig, kwokCRDs, err := writeKwokFiles(c.dir)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	cpLog, err := os.Create(cpLogPath)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Start(
		WithCRDPaths(kwokCRDs),
		WithControlPlaneOutput(cpLog),
		WithAPIServerFlags(apiServerFlags(fp)),
	)
	if err != nil {
		cpLog.Close()
		t.Fatalf("testenv: %v\n(kube-apiserver+etcd log: %s)", err, cpLogPath)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("testenv: stop control plane: %v", err)
		}
		cpLog.Close()
	})
	c.env = env
	return kwokConfig
}

// apiServerFlags are the kube-apiserver flags of a simulated cluster.
func apiServerFlags(fp frontProxyFiles) map[string]string {
	return map[string]string{
		// Aggregation layer (metrics.k8s.io): kube-apiserver authenticates to extension API
		// servers with the front-proxy client certificate and passes the user in headers.
		"requestheader-client-ca-file":       fp.CA,
		"requestheader-allowed-names":        frontProxyClientName,
		"requestheader-extra-headers-prefix": "X-Remote-Extra-",
		"requestheader-group-headers":        "X-Remote-Group",
		"requestheader-username-headers":     "X-Remote-User",
		"proxy-client-cert-file":             fp.ClientCert,
		"proxy-client-key-file":              fp.ClientKey,
		// --enable-aggregator-routing stays off: see registerMetricsAPI.
		// Reach kwok's "kubelet" (pods/portforward) at the node's InternalIP: its Hostname
		// address is the node name, which does not resolve.
		"kubelet-preferred-address-types": "InternalIP",
		// With WatchList on, kube-apiserver turns every watch from resourceVersion "" or "0"
		// into a watch-list stream, which it then refuses on etcd 3.4 ("RequestWatchProgress
		// is disabled"). kwok watches from "0": each watch ended at once and kwok saw pod
		// changes (usage annotations) only on its next relist, seconds to tens of seconds late.
		"feature-gates": "WatchList=false",
	}
}

// connect writes the cluster's kubeconfig and builds its clients.
func (c *Cluster) connect(t testing.TB) {
	t.Helper()
	c.Config = rest.CopyConfig(c.env.Config)
	c.Config.QPS, c.Config.Burst = 100, 200
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	if err := writeKubeconfig(c.Kubeconfig, c.Config); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	var err error
	if c.Client, err = client.New(c.Config, client.Options{Scheme: clientgoscheme.Scheme}); err != nil {
		t.Fatalf("testenv: controller-runtime client: %v", err)
	}
	if c.clientset, err = kubernetes.NewForConfig(c.Config); err != nil {
		t.Fatalf("testenv: clientset: %v", err)
	}
	if c.metrics, err = metricsclient.NewForConfig(c.Config); err != nil {
		t.Fatalf("testenv: metrics clientset: %v", err)
	}
}

// startKwokAndMetricsServer starts kwok and, unless opts.WithoutMetricsServer,
// metrics-server behind metrics.k8s.io.
func (c *Cluster) startKwokAndMetricsServer(ctx context.Context, t testing.TB, kwokConfig string, opts ClusterOptions) {
	t.Helper()
	c.kwokPort = freeLoopbackPort(t)
	c.kwok = newKwok(c.dir, c.Kubeconfig, kwokConfig, c.kwokPort)
	if err := c.kwok.start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(c.kwok.stop)
	if opts.WithoutMetricsServer {
		return
	}
	port := freeLoopbackPort(t)
	c.ms = newMetricsServer(c.dir, c.Kubeconfig, port, opts.MetricsResolution)
	if err := c.ms.start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { c.ms.stop() }) // c.ms may be replaced by waitMetricsAPIStarting
	if err := registerMetricsAPI(ctx, c.Client, port); err != nil {
		t.Fatalf("testenv: register metrics.k8s.io: %v", err)
	}
}

// integrateUsage reads every node's /metrics/resource from kwok every 250 ms until t ends
// (see ClusterOptions.IntegrateUsage).
func (c *Cluster) integrateUsage(t testing.TB) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, node := range c.Nodes {
				_ = c.primeUsage(ctx, node) // a missed read only coarsens the integral
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// kwokNode is a node for kwok to manage, as kwokctl creates them.
func kwokNode(name string) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Annotations: map[string]string{
				kwokNodeAnnotation:             "fake",
				"node.alpha.kubernetes.io/ttl": "0",
				resourceMetricsPathAnnotation:  "/metrics/nodes/" + name + "/metrics/resource",
			},
			Labels: map[string]string{
				"kubernetes.io/hostname": name,
				"kubernetes.io/os":       "linux",
				"kubernetes.io/arch":     "amd64",
				"type":                   "kwok",
			},
		},
	}
}

// waitNodesReady waits until kwok has made every node Ready with its kubelet endpoint set.
func (c *Cluster) waitNodesReady(ctx context.Context) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exited, err := c.kwok.exited(); exited {
			return false, fmt.Errorf("kwok exited: %v", err)
		}
		var nodes corev1.NodeList
		if err := c.Client.List(ctx, &nodes); err != nil {
			last = err.Error()
			return false, nil
		}
		ready := 0
		for _, n := range nodes.Items {
			if n.Status.DaemonEndpoints.KubeletEndpoint.Port != 0 && nodeReady(&n) {
				ready++
			}
		}
		last = fmt.Sprintf("%d/%d nodes Ready", ready, len(c.Nodes))
		return ready == len(c.Nodes), nil
	})
	if err != nil {
		return fmt.Errorf("wait for kwok nodes (%s): %w", last, err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, cond := range n.Status.Conditions {
		if cond.Type == corev1.NodeReady {
			return cond.Status == corev1.ConditionTrue
		}
	}
	return false
}

// waitMetricsAPIStarting waits as waitMetricsAPI for a metrics-server just started,
// restarting it (up to 3 times) when it exits while starting, as a Deployment's would be:
// a CI run saw it exit at once (exit status 2, usage printed), as it does when another
// process took its port between freeLoopbackPort and its bind (it then gets a new port and
// the APIService is registered again), or when it cannot read the
// extension-apiserver-authentication ConfigMap yet.
func (c *Cluster) waitMetricsAPIStarting(ctx context.Context, t testing.TB, dir string, resolution time.Duration) error {
	for attempt := 1; ; attempt++ {
		err := c.waitMetricsAPI(ctx)
		exited, _ := c.ms.exited()
		if err == nil || !exited || attempt > 3 || ctx.Err() != nil {
			return err
		}
		log := c.ms.logTail(3000)
		t.Logf("testenv: metrics-server exited while starting (attempt %d: %v); restarting it. Its log (tail):\n%s", attempt, err, log)
		c.ms.stop()
		if strings.Contains(log, "address already in use") {
			port := freeLoopbackPort(t)
			c.ms = newMetricsServer(dir, c.Kubeconfig, port, resolution)
			if err := reregisterMetricsAPI(ctx, c.Client, port); err != nil {
				return fmt.Errorf("register metrics.k8s.io on port %d: %w", port, err)
			}
		}
		if err := c.ms.start(); err != nil {
			return err
		}
	}
}

// waitMetricsAPI waits until a list of pod metrics through kube-apiserver succeeds, that is until
// the aggregator reaches metrics-server and metrics-server authenticates and authorizes the
// forwarded user.
func (c *Cluster) waitMetricsAPI(ctx context.Context) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		if exited, err := c.ms.exited(); exited {
			return false, fmt.Errorf("metrics-server exited: %v", err)
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, last = c.metrics.MetricsV1beta1().PodMetricses(metricsServerNamespace).List(rctx, metav1.ListOptions{})
		return last == nil, nil
	})
	if err != nil {
		if status, msg, serr := apiServiceAvailable(context.Background(), c.Client); serr == nil {
			err = fmt.Errorf("%w; APIService %s Available=%q: %s", err, metricsAPIServiceName, status, msg)
		}
		return fmt.Errorf("wait for metrics.k8s.io through kube-apiserver (last: %v): %w", last, err)
	}
	return nil
}

// StopMetricsServer stops metrics-server; metrics.k8s.io requests then fail with 503
// ServiceUnavailable, as on a cluster whose metrics-server is down.
func (c *Cluster) StopMetricsServer(t testing.TB) {
	t.Helper()
	if c.ms == nil {
		t.Fatal("testenv: cluster started WithoutMetricsServer")
	}
	c.ms.stop()
}

// StartMetricsServer restarts metrics-server on its port and waits until metrics.k8s.io answers
// again. Its metrics store starts empty: pods' metrics reappear after its second scrape, one
// MetricsResolution later.
func (c *Cluster) StartMetricsServer(t testing.TB) {
	t.Helper()
	if c.ms == nil {
		t.Fatal("testenv: cluster started WithoutMetricsServer")
	}
	if err := c.ms.start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := c.waitMetricsAPI(ctx); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// writeKubeconfig writes cfg (client certificate auth, as envtest's users have) as a kubeconfig.
func writeKubeconfig(path string, cfg *rest.Config) error {
	return writeKubeconfigAs(path, cfg, "")
}

// writeKubeconfigAs writes a kubeconfig of the admin of cfg impersonating user ("" for none).
func writeKubeconfigAs(path string, cfg *rest.Config, user string) error {
	if len(cfg.CertData) == 0 || len(cfg.KeyData) == 0 {
		return errors.New("write kubeconfig: rest.Config has no client certificate")
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["testenv"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Impersonate: user}
	kc.Contexts["testenv"] = &clientcmdapi.Context{Cluster: "testenv", AuthInfo: "admin"}
	kc.CurrentContext = "testenv"
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// ServiceAccountKubeconfig creates ServiceAccount ns/name (bound to no role: grant what the
// test needs) and writes a kubeconfig acting as it (the admin impersonating it); it returns the
// file's path. For a component that must be refused what its RBAC lacks.
func (c *Cluster) ServiceAccountKubeconfig(t testing.TB, ns, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testenv: create namespace %s: %v", ns, err)
	}
	if err := c.Client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("testenv: create ServiceAccount %s/%s: %v", ns, name, err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig-"+name)
	if err := writeKubeconfigAs(path, c.Config, "system:serviceaccount:"+ns+":"+name); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return path
}

// StopControlPlane stops kube-apiserver and etcd (see Env.StopControlPlane); kwok,
// metrics-server and the pods' processes keep running.
func (c *Cluster) StopControlPlane(t testing.TB) {
	t.Helper()
	if err := c.env.StopControlPlane(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// StartControlPlane starts etcd and kube-apiserver again on the same ports with the
// same data and certificates (see Env.StartControlPlane).
func (c *Cluster) StartControlPlane(t testing.TB) {
	t.Helper()
	if err := c.env.StartControlPlane(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
