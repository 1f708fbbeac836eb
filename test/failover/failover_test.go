package failover

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	kprofoperator "github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/storage"
	"github.com/kprof/kprof/internal/testenv"
)

// Schedule and cooldown of the failover test. The interval is the CRD's minimum.
const (
	interval = 30 * time.Second
	jitter   = 0.1 // the engine's default spread of scheduled rounds
	cooldown = 90 * time.Second
)

// TestFailoverKeepsTheScheduleAndTheCooldowns runs two `kprof operator` processes with
// leader election on a simulated cluster (kwok pods served by real sample apps,
// metrics-server), kills the leader with SIGKILL while it captures three pods on a
// schedule and a fourth pod is inside its threshold cooldown, and checks that the
// standby takes over within the lease, captures every scheduled pod again no later
// than one interval after its capture was due, does not capture the hot pod again
// before its cooldown ends (and does after), and counts in status what it stored.
func TestFailoverKeepsTheScheduleAndTheCooldowns(t *testing.T) {
	t.Parallel()
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
	annotations := map[string]string{profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}
	scheduled := []string{"sched-0", "sched-1", "sched-2"}
	for _, name := range scheduled {
		p := c.CreatePod(t, testenv.PodSpec{Namespace: "sched", Name: name, Annotations: annotations,
			Containers: []testenv.ContainerSpec{{Name: "main", Port: port}}})
		testenv.StartSampleApp(t, net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)))
	}
	hot := c.CreatePod(t, testenv.PodSpec{Namespace: "hot", Name: "hot-0", Annotations: annotations,
		Containers: []testenv.ContainerSpec{{Name: "main", Port: port, CPURequest: "100m", MemoryRequest: "100Mi"}}})
	testenv.StartSampleApp(t, net.JoinHostPort(hot.Status.PodIP, strconv.Itoa(port)))
	c.SetUsage(t, "hot", "hot-0", "95m", "10Mi") // above 80% of its CPU request, and it stays there

	a := newOperator(t, "a", c.Kubeconfig)
	a.start(t)
	holderA := waitLeader(t, cl, a, time.Minute)
	b := newOperator(t, "b", c.Kubeconfig)
	b.start(t)
	if leads, err := b.leads(); err != nil || leads {
		t.Fatalf("the second replica leads (%v) while the first holds the lease: %v", leads, err)
	}

	enabled := true
	every := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "sched", Name: "every"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: int32(interval / time.Second)},
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	spikes := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: "hot", Name: "spikes"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Thresholds: &profilingv1alpha1.Thresholds{Enabled: &enabled, CPUThresholdPercent: 80,
				CheckIntervalSeconds: 10, CooldownSeconds: int32(cooldown / time.Second)},
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	for _, pc := range []*profilingv1alpha1.ProfilingConfig{every, spikes} {
		if err := cl.Create(ctx, pc); err != nil {
			t.Fatal(err)
		}
	}

	// The leader captures every scheduled pod twice, and the hot pod once with its
	// cooldown in status.
	var firstTrigger time.Time
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		for _, pod := range scheduled {
			if n := len(of(a.stored(t), pod, "schedule")); n < 2 {
				return false, fmt.Sprintf("%s: %d scheduled captures by the leader", pod, n)
			}
		}
		th := of(a.stored(t), "hot-0", "threshold")
		if len(th) != 1 {
			return false, fmt.Sprintf("hot-0: %d threshold captures by the leader", len(th))
		}
		var pc profilingv1alpha1.ProfilingConfig
		if err := cl.Get(ctx, client.ObjectKeyFromObject(spikes), &pc); err != nil {
			return false, err.Error()
		}
		if len(pc.Status.LastTriggers) != 1 || pc.Status.LastTriggers[0].Pod != "hot-0" {
			return false, fmt.Sprintf("status.lastTriggers = %+v", pc.Status.LastTriggers)
		}
		firstTrigger = th[0].CapturedAt
		return true, ""
	})
	if since := time.Since(firstTrigger); since > cooldown/2 {
		t.Fatalf("the leader captured hot-0 %s ago; too late in its %s cooldown to show a failover inside it", since, cooldown)
	}

	killed := time.Now()
	a.kill(t)
	var base profilingv1alpha1.ProfilingConfig // what the dead leader wrote to status
	if err := cl.Get(ctx, client.ObjectKeyFromObject(every), &base); err != nil {
		t.Fatal(err)
	}
	var holderB string
	var takeover time.Duration
	testenv.Eventually(t, 2*leaseDuration+10*time.Second, func() (bool, string) {
		h, err := leaseHolder(ctx, cl)
		if err != nil || h == "" || h == holderA {
			return false, fmt.Sprintf("lease holder %q (%v), the dead leader was %q", h, err, holderA)
		}
		if leads, err := b.leads(); err != nil || !leads {
			return false, fmt.Sprintf("lease held by %q, replica b leads: %v (%v)", h, leads, err)
		}
		holderB, takeover = h, time.Since(killed)
		return true, ""
	})
	t.Logf("new leader %s %s after the kill (lease %s, retry %s)", holderB, takeover.Round(time.Millisecond), leaseDuration, retryPeriod)
	t.Run("the standby leads within the lease duration plus one retry", func(t *testing.T) {
		// The standby acquires at its first retry after the lease expired; the rest is
		// the loaded machine (7.2 s seen at most under stress-ng with 6 s + 0.5 s).
		if limit := leaseDuration + retryPeriod + 2*time.Second; takeover > limit {
			t.Errorf("new leader after %s, want at most %s", takeover, limit)
		}
	})

	t.Run("every scheduled pod is captured again no later than one interval after it was due", func(t *testing.T) {
		for _, pod := range scheduled {
			byA := of(a.stored(t), pod, "schedule")
			last := byA[len(byA)-1].CapturedAt
			var next time.Time
			testenv.Eventually(t, 2*interval+takeover+10*time.Second, func() (bool, string) {
				byB := of(b.stored(t), pod, "schedule")
				if len(byB) == 0 {
					return false, pod + ": no scheduled capture by the new leader yet"
				}
				next = byB[0].CapturedAt
				return true, ""
			})
			gap := next.Sub(last)
			due := interval + time.Duration(jitter*float64(interval))
			t.Logf("%s: last capture by the dead leader %s, first by the new one %s later (due at most %s later)",
				pod, last.Format("15:04:05.000"), gap.Round(time.Millisecond), due)
			if gap > due+interval {
				t.Errorf("%s: captured %s after the previous capture: more than one interval after it was due (%s)", pod, gap, due)
			}
		}
	})

	t.Run("the hot pod is not captured again inside its cooldown, and is after it", func(t *testing.T) {
		// The new leader's checks see hot-0 above its threshold and suppress it.
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			m, err := b.metrics()
			if err != nil {
				return false, err.Error()
			}
			if n := sum(m, "kprof_trigger_suppressed_total", `reason="cooldown"`); n < 2 {
				return false, fmt.Sprintf("%v cooldown suppressions by the new leader", n)
			}
			return true, ""
		})
		if th := of(b.stored(t), "hot-0", "threshold"); len(th) != 0 && th[0].CapturedAt.Before(firstTrigger.Add(cooldown)) {
			t.Fatalf("the new leader captured hot-0 %s after the first trigger, inside the %s cooldown", th[0].CapturedAt.Sub(firstTrigger), cooldown)
		}
		var again time.Time
		testenv.Eventually(t, time.Until(firstTrigger.Add(cooldown))+time.Minute, func() (bool, string) {
			th := of(b.stored(t), "hot-0", "threshold")
			if len(th) == 0 {
				return false, "hot-0: no capture after the cooldown yet"
			}
			again = th[0].CapturedAt
			return true, ""
		})
		t.Logf("hot-0 captured again %s after the first trigger (cooldown %s)", again.Sub(firstTrigger).Round(time.Millisecond), cooldown)
		if again.Sub(firstTrigger) < cooldown {
			t.Errorf("hot-0 captured again %s after the first trigger, inside the %s cooldown", again.Sub(firstTrigger), cooldown)
		}
		var list profilingv1alpha1.ProfileCaptureList
		if err := cl.List(ctx, &list, client.InNamespace("hot")); err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 2 {
			t.Errorf("%d ProfileCaptures of hot-0, want 2 (one per cooldown)", len(list.Items))
		}
	})

	t.Run("status counts what the new leader stored on top of what the dead one reported", func(t *testing.T) {
		// The dead leader's last results may not have reached status (a kill -9 loses
		// the counts not yet written, never a profile): status never counts more than
		// is stored, and the new leader's captures are all counted.
		testenv.Eventually(t, interval, func() (bool, string) {
			var pc profilingv1alpha1.ProfilingConfig
			if err := cl.Get(ctx, client.ObjectKeyFromObject(every), &pc); err != nil {
				return false, err.Error()
			}
			byA, byB := len(of(a.stored(t), "", "schedule")), len(of(b.stored(t), "", "schedule"))
			if got, want := pc.Status.TotalProfiles-base.Status.TotalProfiles, int64(byB); got != want {
				return false, fmt.Sprintf("totalProfiles grew by %d since the kill, the new leader stored %d", got, want)
			}
			if base.Status.TotalProfiles > int64(byA) {
				return false, fmt.Sprintf("the dead leader reported %d profiles and stored %d", base.Status.TotalProfiles, byA)
			}
			if pc.Status.TotalFailures != 0 {
				return false, fmt.Sprintf("totalFailures = %d", pc.Status.TotalFailures)
			}
			t.Logf("stored by the dead leader %d (%d in status), by the new one %d", byA, base.Status.TotalProfiles, byB)
			return true, ""
		})
	})
}

// of selects the profiles of pod ("" any) whose reason starts with reason, oldest first.
func of(ms []storage.Meta, pod, reason string) []storage.Meta {
	var out []storage.Meta
	for _, m := range ms {
		if (pod == "" || m.Pod == pod) && strings.HasPrefix(m.Reason, reason) {
			out = append(out, m)
		}
	}
	slices.SortFunc(out, func(x, y storage.Meta) int { return x.CapturedAt.Compare(y.CapturedAt) })
	return out
}
