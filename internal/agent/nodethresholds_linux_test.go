//go:build linux

package agent

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/agent/nodethreshold"
	"github.com/kprof/kprof/internal/testenv"
)

// These tests run the real agent as root against a simulated cluster (envtest + kwok),
// with a burner process in real cgroup v1 cpuacct and memory cgroups whose path carries
// the UID of a kwok pod and the container ID its status lists, as kubelet lays them out.

// thresholdsEnv is the cluster and client the node threshold tests share.
type thresholdsEnv struct {
	c      *testenv.Cluster
	client client.Client // knows profiling.io
}

func TestNodeThresholds(t *testing.T) {
	requireRoot(t)
	c := testenv.StartCluster(t, testenv.ClusterOptions{WithoutMetricsServer: true})
	c.Kubepods(t) // the node's kubepods tree, before any agent starts
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, profilingv1alpha1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := client.New(c.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	env := &thresholdsEnv{c: c, client: cl}

	t.Run("a CPU spike creates one ProfileCapture within seconds", func(t *testing.T) {
		p := env.burnPod(t, "cpu-spike", "100m", "1Gi")
		env.createConfig(t, "cpu-spike", nil)
		a := env.startAgent(t, c.Kubeconfig)
		cg := c.NewPodCgroup(t, p)
		started := time.Now()
		cg.Start(t, "while :; do :; done")

		pc := env.waitCaptures(t, p.Namespace, 1, 15*time.Second)[0]
		crossedAt := pc.Spec.Threshold.CrossedAt.Time
		t.Logf("crossing read %s after the burn started, ProfileCapture %s", crossedAt.Sub(started).Round(time.Millisecond), pc.Name)
		if crossedAt.Before(started) || crossedAt.Sub(started) > 10*time.Second {
			t.Errorf("crossedAt %s is not within 10 s after the burn started (%s)", crossedAt, started)
		}
		checkCapture(t, pc, p, "cpu", c.Nodes[0], "cpu-spike")
		// More readings above the threshold are suppressed by the agent's own cooldown:
		// still exactly one.
		a.waitMetric(t, "kprof_agent_threshold_suppressed_total", map[string]string{"reason": nodethreshold.SuppressedRecent}, 3)
		if got := env.captures(t, p.Namespace); len(got) != 1 {
			t.Errorf("%d ProfileCaptures after more crossing readings, want 1", len(got))
		}
	})

	t.Run("a memory climb creates one ProfileCapture for memory", func(t *testing.T) {
		p := env.burnPod(t, "mem-climb", "4", "64Mi") // 4 cores: CPU cannot cross on this machine
		env.createConfig(t, "mem-climb", nil)
		env.startAgent(t, c.Kubeconfig)
		cg := c.NewPodCgroup(t, p)
		// 50 MB held by the shell: 78% of the 64 MiB request, past the 50% threshold.
		cg.Start(t, `x=$(head -c 50000000 /dev/zero | tr '\0' a); while :; do sleep 1; done`)

		pc := env.waitCaptures(t, p.Namespace, 1, 15*time.Second)[0]
		checkCapture(t, pc, p, "memory", c.Nodes[0], "mem-climb")
	})

	t.Run("a config whose lastTriggers hold the pod in its cooldown suppresses", func(t *testing.T) {
		p := env.burnPod(t, "cooldown", "100m", "1Gi")
		env.createConfig(t, "cooldown", []profilingv1alpha1.PodTrigger{{
			Pod: p.Name, UID: string(p.UID), Time: metav1.Now(), Reason: "cpu 99% of request ≥ 80%", Capture: "earlier-x1y2z",
		}})
		a := env.startAgent(t, c.Kubeconfig)
		cg := c.NewPodCgroup(t, p)
		cg.Start(t, "while :; do :; done")

		a.waitMetric(t, "kprof_agent_threshold_suppressed_total", map[string]string{"reason": nodethreshold.SuppressedCooldown}, 3)
		if got := env.captures(t, p.Namespace); len(got) != 0 {
			t.Errorf("%d ProfileCaptures inside the cooldown, want none: %s", len(got), got[0].Spec.Reason)
		}
	})

	t.Run("an agent without RBAC says which permission it lacks", func(t *testing.T) {
		p := env.burnPod(t, "norbac", "100m", "1Gi")
		env.createConfig(t, "norbac", nil)

		// No role at all: the ProfilingConfig watch is forbidden.
		a := env.startAgent(t, env.c.ServiceAccountKubeconfig(t, "norbac", "no-role"))
		a.logs.waitLog(t, 0, 30*time.Second, map[string]string{
			"msg":                "forbidden to list and watch ProfilingConfigs: the agent's RBAC lacks get, list, watch on profilingconfigs.profiling.io",
			"missing_permission": "profilingconfigs.profiling.io",
		})
		a.waitMetric(t, "kprof_agent_node_thresholds_forbidden", map[string]string{"operation": nodethreshold.OpWatchConfigs}, 1)
		a.stop(t)

		// Pods and ProfilingConfigs readable, ProfileCaptures not creatable.
		env.grant(t, "norbac", "reader", []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{profilingv1alpha1.GroupVersion.Group}, Resources: []string{"profilingconfigs"}, Verbs: []string{"get", "list", "watch"}},
		})
		b := env.startAgent(t, env.c.ServiceAccountKubeconfig(t, "norbac", "reader"))
		cg := c.NewPodCgroup(t, p)
		cg.Start(t, "while :; do :; done")
		b.logs.waitLog(t, 0, 30*time.Second, map[string]string{
			"msg": "forbidden to create ProfileCaptures: the agent's RBAC lacks create on profilecaptures.profiling.io",
		})
		b.waitMetric(t, "kprof_agent_threshold_create_errors_total", map[string]string{"reason": "Forbidden"}, 1)
		b.waitMetric(t, "kprof_agent_node_thresholds_forbidden", map[string]string{"operation": nodethreshold.OpCreateCaptures}, 1)
	})
}

// burnPod creates, in namespace name, an annotated kwok pod named name with one container
// "main" of these requests.
func (e *thresholdsEnv) burnPod(t *testing.T, name, cpuReq, memReq string) *corev1.Pod {
	t.Helper()
	return e.c.CreatePod(t, testenv.PodSpec{
		Namespace: name, Name: name + "-0",
		Labels:      map[string]string{"app": "burn"},
		Annotations: map[string]string{profilingv1alpha1.AnnotationEnabled: "true"},
		Containers:  []testenv.ContainerSpec{{Name: "main", CPURequest: cpuReq, MemoryRequest: memReq}},
	})
}

// createConfig creates ProfilingConfig name in namespace name: thresholds from the agent,
// CPU 80% and memory 50% of the request, cooldown 300 s; status.lastTriggers as given.
func (e *thresholdsEnv) createConfig(t *testing.T, name string, last []profilingv1alpha1.PodTrigger) {
	t.Helper()
	enabled := true
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: name, Name: name},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector: profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "burn"}}},
			Thresholds: &profilingv1alpha1.Thresholds{
				Enabled: &enabled, CPUThresholdPercent: 80, MemoryThresholdPercent: 50, CheckIntervalSeconds: 30,
				CooldownSeconds: 300, Basis: "Request", Source: profilingv1alpha1.SourceAgent,
			},
		},
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.client.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}
	if len(last) > 0 {
		pc.Status.LastTriggers = last
		if err := e.client.Status().Update(ctx, pc); err != nil {
			t.Fatalf("set lastTriggers: %v", err)
		}
	}
}

func (e *thresholdsEnv) captures(t *testing.T, ns string) []profilingv1alpha1.ProfileCapture {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var list profilingv1alpha1.ProfileCaptureList
	if err := e.client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatalf("list ProfileCaptures: %v", err)
	}
	return list.Items
}

// waitCaptures waits until namespace ns holds n ProfileCaptures and returns them.
func (e *thresholdsEnv) waitCaptures(t *testing.T, ns string, n int, timeout time.Duration) []profilingv1alpha1.ProfileCapture {
	t.Helper()
	var got []profilingv1alpha1.ProfileCapture
	testenv.Eventually(t, timeout, func() (bool, string) {
		got = e.captures(t, ns)
		return len(got) >= n, fmt.Sprintf("%d ProfileCaptures in %s, want %d", len(got), ns, n)
	})
	if len(got) != n {
		t.Fatalf("%d ProfileCaptures in %s, want %d", len(got), ns, n)
	}
	return got
}

func checkCapture(t *testing.T, pc profilingv1alpha1.ProfileCapture, p *corev1.Pod, resource, node, config string) {
	t.Helper()
	s := pc.Spec
	if s.Pod != p.Name || s.Trigger != profilingv1alpha1.TriggerThreshold || s.Requester != "kprof-agent/"+node ||
		s.ProfilingConfig == nil || *s.ProfilingConfig != (profilingv1alpha1.ProfilingConfigReference{Namespace: config, Name: config}) ||
		s.Threshold == nil || s.Threshold.Source != profilingv1alpha1.SourceAgent || s.Threshold.Resource != resource ||
		s.Threshold.Container != "main" || !strings.HasPrefix(s.Reason, resource+" ") || !strings.Contains(s.Reason, "% of request ≥ ") {
		t.Errorf("ProfileCapture spec %+v (threshold %+v), want pod %s, Threshold from the agent on %s, %s of container main, config %s",
			s, s.Threshold, p.Name, node, resource, config)
	}
	if pc.Namespace != p.Namespace || !strings.HasPrefix(pc.Name, p.Name+"-") ||
		pc.Labels[profilingv1alpha1.LabelCapturePod] != p.Name || pc.Labels[profilingv1alpha1.LabelCaptureNode] != node {
		t.Errorf("ProfileCapture %s/%s labels %v, want %s-… in %s with pod and node labels", pc.Namespace, pc.Name, pc.Labels, p.Name, p.Namespace)
	}
	t.Logf("ProfileCapture %s: %s", pc.Name, s.Reason)
}

// thresholdAgent is a running agent with node thresholds.
type thresholdAgent struct {
	*Agent
	reg  *prometheus.Registry
	logs *logLines
}

// startAgent runs the real agent on the kwok node with kubeconfig: node thresholds on,
// no collector (no config, no default).
func (e *thresholdsEnv) startAgent(t *testing.T, kubeconfig string) *thresholdAgent {
	t.Helper()
	logs := newLogLines(t)
	reg := prometheus.NewRegistry()
	a, err := New(Config{
		ConfigDir: t.TempDir(), NoDefault: true, NodeName: e.c.Nodes[0], Kubeconfig: kubeconfig,
		MetricsAddr: "0", HealthAddr: "0", NodeThresholds: true,
		Logger: testLogger(t, logs), Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	ta := &thresholdAgent{Agent: a, reg: reg, logs: logs}
	t.Cleanup(func() { ta.stop(t) })
	if err := a.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return ta
}

func (a *thresholdAgent) stop(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Errorf("agent shutdown: %v", err)
	}
}

// waitMetric waits until the metric with labels is at least want.
func (a *thresholdAgent) waitMetric(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		v := metricValue(t, a.reg, name, labels)
		return v >= want, fmt.Sprintf("%s%v = %v, want at least %v", name, labels, v, want)
	})
}

// grant binds a new ClusterRole of rules to ServiceAccount ns/sa (created when missing).
func (e *thresholdsEnv) grant(t *testing.T, ns, sa string, rules []rbacv1.PolicyRule) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := e.client.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: sa}}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ServiceAccount: %v", err)
	}
	name := "kprof-test-" + ns + "-" + sa
	role := &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: name}, Rules: rules}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: ns, Name: sa}},
	}
	for _, o := range []client.Object{role, binding} {
		if err := e.client.Create(ctx, o); err != nil {
			t.Fatalf("create %T: %v", o, err)
		}
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("creating cgroups and moving processes into them needs root; run the tests as root")
	}
}
