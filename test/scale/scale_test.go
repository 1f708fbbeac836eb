//go:build scale

// Package scale is kprof's scale benchmark: the operator, as its own process, against a
// simulated cluster of annotated pods (2 000 by default, -pods) on kwok nodes (100 pods each)
// under one ProfilingConfig (or -configs, each selecting a share). It
// prints the operator's RSS, CPU and reconcile latency per phase next to a peer (a bare
// controller-runtime manager watching the same pods with an empty reconciler) and the cluster's
// own processes. Run it with `make bench-scale`; docs/performance.md records a run.
package scale

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// The size of the run: flags of the test binary, or the environment (make bench-scale sets
// both through SCALE_PODS, SCALE_CONFIGS, SCALE_SOAK and SCALE_PPROF).
var (
	podsFlag    = flag.Int("pods", envInt("KPROF_SCALE_PODS", 2000), "annotated pods, 100 per kwok node (env KPROF_SCALE_PODS)")
	configsFlag = flag.Int("configs", envInt("KPROF_SCALE_CONFIGS", 1), "ProfilingConfigs, each selecting an equal share of the pods (env KPROF_SCALE_CONFIGS)")
	soakFlag    = flag.Duration("soak", envDuration("KPROF_SCALE_SOAK", 0), "after the +schedule window, keep it running this long and report the operator's RSS slope (env KPROF_SCALE_SOAK; 0: no soak)")
	pprofFlag   = flag.String("pprof-dir", os.Getenv("KPROF_SCALE_PPROF"), "run the operator with --enable-pprof and save its CPU profile of the +schedule window and its heap here, printing their tops (env KPROF_SCALE_PPROF)")
)

// Set from the flags when TestScale starts.
var (
	nodeCount   int
	podCount    int
	hotCount    int // pods whose CPU usage crosses the threshold
	configCount int
)

const (
	namespace = "scale"

	idleWindow   = 30 * time.Second  // pods cached, no ProfilingConfig yet
	steadyWindow = 120 * time.Second // each steady-state phase
	cooldown     = 300 * time.Second
)

func envInt(key string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(key)); err == nil {
		return n
	}
	return def
}

func envDuration(key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(key)); err == nil {
		return d
	}
	return def
}

func podName(i int) string { return fmt.Sprintf("target-%05d", i) }

// hotPod is the index of the i-th hot pod: one in a hundred, one on each node.
func hotPod(i int) int { return i*100 + i%nodeCount }

// configName is the name of the k-th ProfilingConfig; config k selects the pods of shard k.
func configName(k int) string {
	if configCount == 1 {
		return "all"
	}
	return fmt.Sprintf("shard-%d", k)
}

func TestScale(t *testing.T) {
	podCount, configCount = *podsFlag, *configsFlag
	if podCount < 100 || configCount < 1 || configCount > podCount/100 {
		t.Fatalf("-pods %d -configs %d: want at least 100 pods and 100 pods per config", podCount, configCount)
	}
	nodeCount, hotCount = podCount/100, podCount/100
	t.Logf("%d pods on %d nodes, %d ProfilingConfig(s), soak %s", podCount, nodeCount, configCount, *soakFlag)
	bin := t.TempDir()
	kprofBin := buildBinary(t, bin, "kprof", "./cmd/kprof")
	peerBin := buildBinary(t, bin, "peer", "./test/scale/peer", "scale")

	c := testenv.StartCluster(t, testenv.ClusterOptions{Nodes: nodeCount})
	cl, err := client.New(c.Config, client.Options{Scheme: operator.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(c.Config)
	if err != nil {
		t.Fatal(err)
	}

	// Annotated pods, 100 per node, whose pprof port refuses connections.
	port := freePortOnEveryAddress(t)
	specs := make([]testenv.PodSpec, podCount)
	for i := range specs {
		specs[i] = testenv.PodSpec{
			Namespace: namespace, Name: podName(i), Node: c.Nodes[i%nodeCount],
			Labels: map[string]string{"app": "scale-target", "shard": strconv.Itoa(i % configCount)},
			Annotations: map[string]string{
				profilingv1alpha1.AnnotationEnabled: "true",
				profilingv1alpha1.AnnotationPort:    strconv.Itoa(port),
			},
			Containers: []testenv.ContainerSpec{{Name: "main", CPURequest: "100m", MemoryRequest: "100Mi"}},
		}
	}
	began := time.Now()
	c.CreatePods(t, specs, 16)
	created := time.Since(began)
	// kwok brings pods up at a few hundred a second on an idle machine, far slower on a busy one.
	c.WaitPodsRunning(t, namespace, podCount, time.Duration(max(10, podCount/500))*time.Minute)
	running := time.Since(began)
	t.Logf("%d pods created in %s (%.0f/s), all Running and Ready after %s", podCount,
		created.Round(time.Millisecond), float64(podCount)/created.Seconds(), running.Round(time.Millisecond))

	// One pod in a hundred uses 90% of its CPU request (threshold 80%); the rest 1m of 100m.
	for i := range hotCount {
		c.SetUsage(t, namespace, podName(hotPod(i)), "90m", "")
	}
	waitHotUsageVisible(t, c)

	dir := t.TempDir()
	args := []string{"operator",
		"--profiles-dir", filepath.Join(dir, "profiles"), "--spool-dir", filepath.Join(dir, "spool"),
		"--secrets-namespace", "kprof-system", "--shutdown-grace-period", "5s"}
	if *pprofFlag != "" {
		args = append(args, "--enable-pprof")
	}
	kprof := startManager(t, "kprof-operator", kprofBin, c.Kubeconfig, args...)
	peer := startManager(t, "peer", peerBin, c.Kubeconfig)
	b := &bench{
		procs:     append([]watched{{"kprof-operator", kprof.pid}, {"peer", peer.pid}}, clusterProcesses(c.Config.Host, c.Kubeconfig)...),
		kprof:     kprof,
		peer:      peer,
		apiClient: clientset.CoreV1().RESTClient(),
	}
	var windows []window

	// Idle: the informers hold the 2 000 pods; nothing selects them yet.
	windows = append(windows, b.measure(t, "idle", b.sleepChecking(t, idleWindow)))

	// Discovery: from the ProfilingConfigs' creation until each has status.activePods = its share.
	enabled := true
	configs := make([]*profilingv1alpha1.ProfilingConfig, configCount)
	for k := range configs {
		match := map[string]string{"app": "scale-target"}
		if configCount > 1 {
			match["shard"] = strconv.Itoa(k)
		}
		configs[k] = &profilingv1alpha1.ProfilingConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: configName(k)},
			Spec: profilingv1alpha1.ProfilingConfigSpec{
				Selector: profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: match}},
				Thresholds: &profilingv1alpha1.Thresholds{
					Enabled: &enabled, CPUThresholdPercent: 80, MemoryThresholdPercent: 90,
					CheckIntervalSeconds: 10, CooldownSeconds: int32(cooldown / time.Second),
				},
				ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
			},
		}
	}
	var configCreated time.Time
	var timeToActive time.Duration
	discovery := b.measure(t, "discovery", func() {
		configCreated = time.Now()
		for _, pc := range configs {
			if err := cl.Create(context.Background(), pc); err != nil {
				t.Fatalf("create ProfilingConfig: %v", err)
			}
		}
		for k, pc := range configs {
			waitActivePods(t, cl, pc, int32(shardSize(k)), 5*time.Minute)
		}
		timeToActive = time.Since(configCreated)
	})
	windows = append(windows, discovery)

	// Thresholds only: a check of 2 000 pods' usage every 10s; the hot pods trigger once each.
	thresholds := b.measure(t, "thresholds", b.sleepChecking(t, steadyWindow))
	windows = append(windows, thresholds)
	triggers := b.last.kprof.by("kprof_triggers_total", "resource", nil)
	switch since := time.Since(configCreated); {
	case since >= cooldown:
		t.Logf("not checking the trigger count: %s since the config was created, past the %s cooldown", since, cooldown)
	case triggers["cpu"] != float64(hotCount) || triggers["memory"] != 0:
		t.Errorf("kprof_triggers_total = %v after the thresholds phase, want cpu %d (each hot pod once) and memory 0", triggers, hotCount)
	}

	// Thresholds + schedule: every pod's heap profile every 60s (±10%), each failing fast with
	// ConnectFailed: the Events, results and status updates of every target.
	for _, pc := range configs {
		if err := cl.Get(context.Background(), client.ObjectKeyFromObject(pc), pc); err != nil {
			t.Fatal(err)
		}
		pc.Spec.OnDemand = &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 60}
		if err := cl.Update(context.Background(), pc); err != nil {
			t.Fatalf("enable the schedule: %v", err)
		}
	}
	var prof *operatorProfiles
	scheduled := b.measure(t, "+schedule", func() {
		if *pprofFlag != "" {
			prof = profileOperator(t, kprof, *pprofFlag, steadyWindow/2)
		}
		b.sleepChecking(t, steadyWindow)()
	})
	windows = append(windows, scheduled)
	// Every target's first round comes within one interval, its second one interval later.
	if got := scheduled.kprof.captures["failure"] + scheduled.kprof.captures["success"]; got < float64(podCount) {
		t.Errorf("%.0f captures in the %s schedule window, want at least one per pod (%d)", got, steadyWindow, podCount)
	}
	if scheduled.kprof.failures["ConnectFailed"] == 0 {
		t.Errorf("no ConnectFailed captures in the schedule window: %v", scheduled.kprof.failures)
	}
	if *soakFlag > 0 {
		windows = append(windows, b.measure(t, "soak", b.sleepChecking(t, *soakFlag)))
	}

	var final profilingv1alpha1.ProfilingConfigStatus
	for k, pc := range configs {
		var got profilingv1alpha1.ProfilingConfig
		if err := cl.Get(context.Background(), client.ObjectKeyFromObject(pc), &got); err != nil {
			t.Fatal(err)
		}
		final.ActivePods += got.Status.ActivePods
		final.TotalProfiles += got.Status.TotalProfiles
		final.TotalFailures += got.Status.TotalFailures
		final.LastTriggers = append(final.LastTriggers, got.Status.LastTriggers...)
		if k == 0 {
			final.Conditions = got.Status.Conditions
		}
	}
	events := countEvents(t, cl)
	logs, err := summarizeLog(kprof.logPath)
	if err != nil {
		t.Errorf("read the operator's log: %v", err)
	}
	printReport(os.Stdout, report{
		created: created, running: running, timeToActive: timeToActive,
		windows: windows, status: final, events: events, logs: logs, profiles: prof,
	})
}

// shardSize is how many pods config k selects.
func shardSize(k int) int {
	if configCount == 1 {
		return podCount
	}
	n := podCount / configCount
	if k < podCount%configCount {
		n++
	}
	return n
}

// waitHotUsageVisible waits until metrics.k8s.io reports every hot pod's CPU at 80m or more,
// so the thresholds phase measures triggering, not the metrics pipeline.
func waitHotUsageVisible(t *testing.T, c *testenv.Cluster) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for i := 0; i < hotCount; {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		pm, err := c.PodMetrics(ctx, namespace, podName(hotPod(i)))
		cancel()
		if err == nil && len(pm.Containers) > 0 && pm.Containers[0].Usage.Cpu().MilliValue() >= 80 {
			i++
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics.k8s.io does not show the usage of hot pod %s after 3m (last: %v, %v)", podName(hotPod(i)), pm, err)
		}
		time.Sleep(time.Second)
	}
}

// waitActivePods polls pc's status until activePods is want.
func waitActivePods(t *testing.T, cl client.Client, pc *profilingv1alpha1.ProfilingConfig, want int32, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var got profilingv1alpha1.ProfilingConfig
	for {
		if err := cl.Get(context.Background(), client.ObjectKeyFromObject(pc), &got); err == nil && got.Status.ActivePods == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status.activePods = %d after %s, want %d (conditions %+v)", got.Status.ActivePods, timeout, want, got.Status.Conditions)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// eventCount is the Events of the namespace with one reason: objects, and occurrences
// (an Event series counts each occurrence).
type eventCount struct {
	reason             string
	objects, occurring int
}

func countEvents(t *testing.T, cl client.Client) []eventCount {
	t.Helper()
	var list corev1.EventList
	if err := cl.List(context.Background(), &list, client.InNamespace(namespace)); err != nil {
		t.Errorf("list Events: %v", err)
		return nil
	}
	by := map[string]*eventCount{}
	var order []string
	for _, e := range list.Items {
		c := by[e.Reason]
		if c == nil {
			c = &eventCount{reason: e.Reason}
			by[e.Reason] = c
			order = append(order, e.Reason)
		}
		c.objects++
		n := max(int(e.Count), 1)
		if e.Series != nil {
			n = max(int(e.Series.Count), 1)
		}
		c.occurring += n
	}
	out := make([]eventCount, 0, len(order))
	for _, r := range order {
		out = append(out, *by[r])
	}
	return out
}
