//go:build scale

package scale

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// report is everything the benchmark prints.
type report struct {
	created, running time.Duration // pods created; all Running and Ready (from the first create)
	timeToActive     time.Duration // ProfilingConfig created → status.activePods = podCount
	windows          []window
	status           profilingv1alpha1.ProfilingConfigStatus
	events           []eventCount
	logs             logSummary
	profiles         *operatorProfiles // nil without -pprof-dir
}

const mib = 1 << 20

func printReport(out io.Writer, r report) {
	fmt.Fprintf(out, "\n== kprof scale benchmark: %d annotated pods on %d kwok nodes, %d ProfilingConfig(s) ==\n", podCount, nodeCount, configCount)
	fmt.Fprintf(out, "machine: %d CPUs, %s memory, %s/%s, %s\n", runtime.NumCPU(), memTotal(), runtime.GOOS, runtime.GOARCH, runtime.Version())
	fmt.Fprintf(out, "pods created in %s (%.0f/s, 16 concurrent creates), all Running+Ready after %s\n",
		r.created.Round(100*time.Millisecond), float64(podCount)/r.created.Seconds(), r.running.Round(100*time.Millisecond))
	fmt.Fprintf(out, "ProfilingConfig(s) created → status.activePods=%d in all: %s\n\n", podCount, r.timeToActive.Round(time.Millisecond))

	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', tabwriter.AlignRight)
	row := func(label string, cell func(w window) string) {
		cells := []string{label}
		for _, w := range r.windows {
			cells = append(cells, cell(w))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t")+"\t")
	}
	header := func(title string) {
		row(title, func(w window) string { return w.name })
	}
	ms := func(s float64) string {
		if math.IsNaN(s) {
			return "-"
		}
		return fmt.Sprintf("%.1f", s*1000)
	}
	// of returns a cell of process name's usage in a window.
	of := func(name string, f func(u usage) string) func(w window) string {
		return func(w window) string {
			u, ok := w.procs[name]
			if !ok || u.err != nil {
				return "?"
			}
			return f(u)
		}
	}
	rssPeak := func(u usage) string { return fmt.Sprintf("%.1f", float64(u.peak)/mib) }
	rssEnd := func(u usage) string { return fmt.Sprintf("%.1f", float64(u.endRSS)/mib) }
	cpuSec := func(u usage) string { return fmt.Sprintf("%.2f", u.cpu.Seconds()) }
	cpuPct := func(u usage) string { return fmt.Sprintf("%.1f", u.cpuPct) }
	perSec := func(n float64, w window) string { return fmt.Sprintf("%.0f (%.1f/s)", n, n/w.duration.Seconds()) }

	header("kprof operator (own process)")
	row("window", func(w window) string { return w.duration.Round(100 * time.Millisecond).String() })
	row("RSS peak (MiB)", of("kprof-operator", rssPeak))
	row("RSS at end (MiB)", of("kprof-operator", rssEnd))
	row("CPU (s)", of("kprof-operator", cpuSec))
	row("CPU (% of one core)", of("kprof-operator", cpuPct))
	row("goroutines / threads at end", func(w window) string {
		return fmt.Sprintf("%.0f / %d", w.kprof.goroutines, w.procs["kprof-operator"].threads)
	})
	row("Go heap in use at end (MiB)", func(w window) string { return fmt.Sprintf("%.1f", w.kprof.heapInuse/mib) })
	row("reconciles", func(w window) string { return perSec(w.kprof.reconciles, w) })
	row("reconcile p50 (ms)", func(w window) string { return ms(w.kprof.latency.quantile(0.5)) })
	row("reconcile p90 (ms)", func(w window) string { return ms(w.kprof.latency.quantile(0.9)) })
	row("reconcile p99 (ms)", func(w window) string { return ms(w.kprof.latency.quantile(0.99)) })
	row("reconcile mean (ms)", func(w window) string {
		if w.kprof.latency.count() == 0 {
			return "-"
		}
		return ms(w.kprof.latency.sum / w.kprof.latency.count())
	})
	row("reconcile results ok/requeue/error", func(w window) string {
		return fmt.Sprintf("%.0f/%.0f/%.0f", w.kprof.byResult["success"], w.kprof.byResult["requeue"]+w.kprof.byResult["requeue_after"], w.kprof.byResult["error"])
	})
	row("workqueue adds", func(w window) string { return fmt.Sprintf("%.0f", w.kprof.queueAdds) })
	for _, method := range []string{"GET", "PUT", "POST", "PATCH", "DELETE"} {
		row("API requests "+method, func(w window) string { return perSec(w.kprof.requests[method], w) })
	}
	row("API writes (PUT+POST+PATCH+DELETE)", func(w window) string {
		r := w.kprof.requests
		return perSec(r["PUT"]+r["POST"]+r["PATCH"]+r["DELETE"], w)
	})
	row("threshold checks ok/unavailable/failed", func(w window) string {
		return fmt.Sprintf("%.0f/%.0f/%.0f", w.kprof.checks["success"], w.kprof.checks["unavailable"], w.kprof.checks["failure"])
	})
	row("triggers cpu/memory", func(w window) string {
		return fmt.Sprintf("%.0f/%.0f", w.kprof.triggers["cpu"], w.kprof.triggers["memory"])
	})
	row("trigger usage read→capture p50 (ms)", func(w window) string { return ms(w.kprof.triggerKprf.quantile(0.5)) })
	row("crossings suppressed cooldown/busy", func(w window) string {
		return fmt.Sprintf("%.0f/%.0f", w.kprof.suppressed["cooldown"], w.kprof.suppressed["busy"])
	})
	row("captures ok/failed", func(w window) string {
		return fmt.Sprintf("%.0f/%.0f", w.kprof.captures["success"], w.kprof.captures["failure"])
	})
	row("  of which ConnectFailed", func(w window) string { return fmt.Sprintf("%.0f", w.kprof.failures["ConnectFailed"]) })
	row("log written (KiB)", func(w window) string { return fmt.Sprintf("%.0f", float64(w.kprofLog)/1024) })
	row("rounds skipped", func(w window) string { return fmt.Sprintf("%.0f", w.kprof.roundsSkip) })
	fmt.Fprintln(tw, "\t")

	header("peer: bare manager, empty reconciler")
	row("RSS peak (MiB)", of("peer", rssPeak))
	row("RSS at end (MiB)", of("peer", rssEnd))
	row("CPU (s)", of("peer", cpuSec))
	row("CPU (% of one core)", of("peer", cpuPct))
	row("reconciles", func(w window) string { return perSec(w.peer.reconciles, w) })
	row("Go heap in use at end (MiB)", func(w window) string { return fmt.Sprintf("%.1f", w.peer.heapInuse/mib) })
	fmt.Fprintln(tw, "\t")

	header("kprof / peer")
	ratio := func(f func(u usage) float64) func(w window) string {
		return func(w window) string {
			k, p := w.procs["kprof-operator"], w.procs["peer"]
			if k.err != nil || p.err != nil || f(p) == 0 {
				return "-"
			}
			return fmt.Sprintf("%.2fx", f(k)/f(p))
		}
	}
	row("RSS peak", ratio(func(u usage) float64 { return float64(u.peak) }))
	row("CPU", ratio(func(u usage) float64 { return u.cpu.Seconds() }))
	fmt.Fprintln(tw, "\t")

	header("cluster (context)")
	for _, name := range []string{"kube-apiserver", "etcd", "kwok", "metrics-server"} {
		row(name+" RSS peak (MiB)", of(name, rssPeak))
		row(name+" CPU (% of one core)", of(name, cpuPct))
	}
	tw.Flush()

	fmt.Fprintln(out, "\nkprof operator RSS during each window (MiB, every 20s; a soak every 60s), and its least-squares slope:")
	for _, w := range r.windows {
		rss := w.procs["kprof-operator"].rss
		every := 20
		if w.name == "soak" {
			every = 60
		}
		var cells []string
		for i, v := range rss {
			if i%every == 0 || i == len(rss)-1 {
				cells = append(cells, fmt.Sprintf("%.0f", float64(v)/mib))
			}
		}
		fmt.Fprintf(out, "  %-11s %s  (slope %+.1f MiB/h)\n", w.name, strings.Join(cells, " "), rssSlope(rss, time.Second)/mib)
	}
	for _, w := range r.windows {
		if w.name == "soak" {
			rss := w.procs["kprof-operator"].rss
			h := len(rss) / 2
			fmt.Fprintf(out, "soak: %s, operator RSS slope %+.1f MiB/h (first half mean %.1f MiB, second half %.1f MiB), Go heap in use at end %.1f MiB\n",
				w.duration.Round(time.Second), rssSlope(rss, time.Second)/mib, mean(rss[:h])/mib, mean(rss[h:])/mib, w.kprof.heapInuse/mib)
		}
	}
	for _, w := range r.windows[len(r.windows)-2:] {
		fmt.Fprintf(out, "\nkube-apiserver requests in the %s window (%s, all clients), top 12:\n", w.name, w.duration.Round(time.Second))
		for _, l := range top(w.api, 12, w.duration) {
			fmt.Fprintln(out, "  "+l)
		}
	}
	fmt.Fprintf(out, "\nEvents in namespace %s at the end (reason: Event objects, occurrences):\n", namespace)
	for _, e := range r.events {
		fmt.Fprintf(out, "  %-24s %6d %7d\n", e.reason, e.objects, e.occurring)
	}
	s := r.status
	fmt.Fprintf(out, "\nProfilingConfig status at the end: activePods %d, totalProfiles %d, totalFailures %d, lastTriggers %d\n",
		s.ActivePods, s.TotalProfiles, s.TotalFailures, len(s.LastTriggers))
	for _, typ := range []string{profilingv1alpha1.ConditionReady, profilingv1alpha1.ConditionCapturing, profilingv1alpha1.ConditionMetricsAvailable} {
		if c := meta.FindStatusCondition(s.Conditions, typ); c != nil {
			fmt.Fprintf(out, "  %s=%s %s: %.160s\n", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	fmt.Fprintf(out, "\noperator log: %d lines %v; most frequent:\n", r.logs.lines, r.logs.byLevel)
	for _, m := range r.logs.messages[:min(8, len(r.logs.messages))] {
		fmt.Fprintf(out, "  %6d %-5s %.100s\n", m.n, m.level, m.msg)
	}
	if p := r.profiles; p != nil {
		p.finish()
		fmt.Fprintf(out, "\noperator CPU profile of %ds of the +schedule window (%s):\n", p.cpuSeconds, p.cpuPath)
		if p.cpuErr != nil {
			fmt.Fprintf(out, "  %v\n", p.cpuErr)
		}
		fmt.Fprint(out, p.cpuTop)
		fmt.Fprintf(out, "\noperator heap in use at the end (%s):\n", p.heapPath)
		if p.heapErr != nil {
			fmt.Fprintf(out, "  %v\n", p.heapErr)
		}
		fmt.Fprint(out, p.heapTop)
	}
}

// memTotal returns MemTotal from /proc/meminfo.
func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	return "?"
}
