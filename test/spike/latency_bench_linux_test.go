//go:build linux

package spike

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"testing"
	"text/tabwriter"
	"time"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

var spikes = flag.Int("spikes", 20, "spikes measured on each path")

// BenchmarkTriggerLatency measures, side by side in one simulated cluster, how long a
// threshold crossing takes to reach the pod as a pprof request: from the node (the agent's
// cgroup readings, a ProfileCapture, the operator) and from metrics-server (at a 15 s
// resolution, the operator checking every 10 s, kwok's CPU counters integrated as a
// kernel's). Each of -spikes pods on the agent's node gets one CPU spike (its sample app,
// in the pod's real cgroup, busy for 5 s on one core: 500% of its 200m request, against a
// threshold of 80%); the crossing is the spike's start. Each of -spikes pods on a node
// without an agent gets its usage raised past the threshold for good at a known moment.
// Latency = the pod's first pprof request − the crossing. Needs root and the test tools.
//
//	go test -bench TriggerLatency -benchtime 1x -run '^$' -timeout 30m ./test/spike/ [-args -spikes 20]
func BenchmarkTriggerLatency(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Fatal("needs root: the node agent (eBPF) and real cgroups")
	}
	s := startStack(b, 2, 15*time.Second, agentNode)
	s.runOperator(b)
	s.startAgent(b, agentNode, "", true)
	const ns = "latency"
	s.createConfig(b, ns, "latency", profilingv1alpha1.SourceAuto, time.Hour, 1)
	var nodeApps, msApps []*app
	for i := range *spikes {
		nodeApps = append(nodeApps, s.startApp(b, ns, fmt.Sprintf("node-%02d", i), agentNode, "200m", "1Gi", true, nil))
		msApps = append(msApps, s.startApp(b, ns, fmt.Sprintf("ms-%02d", i), noAgentNode, "200m", "1Gi", false, nil))
	}
	for _, a := range msApps {
		s.c.SetUsage(b, ns, a.pod.Name, "10m", "10Mi")
	}
	for _, a := range msApps {
		s.waitMetricsServer(b, ns, a.pod.Name)
	}
	b.ResetTimer()

	var wg sync.WaitGroup
	msLatency := make([]time.Duration, len(msApps))
	wg.Go(func() { // metrics-server's path: every pod at once, they do not compete for CPU
		starts := make([]time.Time, len(msApps))
		for i, a := range msApps {
			starts[i] = time.Now()
			s.c.SetUsage(b, ns, a.pod.Name, "190m", "")
		}
		for i, a := range msApps {
			msLatency[i] = waitHit(b, a, starts[i], 3*time.Minute)
		}
	})
	// The node's path: one spike at a time, 6 s apart, so that the spikes do not compete
	// for this machine's two CPUs.
	nodeLatency := make([]time.Duration, len(nodeApps))
	for i, a := range nodeApps {
		start := time.Now()
		a.load(b, "cpu=5s&workers=1")
		nodeLatency[i] = waitHit(b, a, start, time.Minute)
		time.Sleep(time.Until(start.Add(6 * time.Second))) // spaces the spikes
	}
	wg.Wait()
	b.StopTimer()

	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(w, "path\tspikes\tp50\tp95\tmax\t\n")
	row := func(name string, d []time.Duration) (p50, p95 time.Duration) {
		slices.Sort(d)
		p50, p95 = quantile(d, 0.5), quantile(d, 0.95)
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t\n", name, len(d), p50.Round(time.Millisecond), p95.Round(time.Millisecond), d[len(d)-1].Round(time.Millisecond))
		return p50, p95
	}
	n50, n95 := row("node agent", nodeLatency)
	m50, m95 := row("metrics-server", msLatency)
	w.Flush()
	fmt.Printf("metrics-server / node agent: p50 %.1fx, p95 %.1fx\n", float64(m50)/float64(n50), float64(m95)/float64(n95))
	b.ReportMetric(n50.Seconds(), "node-p50-s")
	b.ReportMetric(n95.Seconds(), "node-p95-s")
	b.ReportMetric(m50.Seconds(), "metrics-server-p50-s")
	b.ReportMetric(m95.Seconds(), "metrics-server-p95-s")
}

// waitHit waits until a's pod gets a pprof request at or after start and returns how long
// after start it came.
func waitHit(b *testing.B, a *app, start time.Time, timeout time.Duration) time.Duration {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if at := a.hits.firstAfter(start); !at.IsZero() {
			return at.Sub(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("no pprof request reached %s within %s of its crossing", a.pod.Name, timeout)
	return 0
}

// quantile of sorted d, nearest rank.
func quantile(d []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(d))+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}
