//go:build linux

// Package spike is the end-to-end test of catching a spike in the act: a simulated cluster
// (kube-apiserver + etcd, kwok, metrics-server), the real operator, and the real node agent
// of this machine (eBPF sampler, cgroup readings, node thresholds, flight recorder) on its
// first node, with the sample app in real cgroups whose paths carry the UIDs of kwok pods.
// It runs as root and fails, never skips, when the machine cannot run it.
package spike

import (
	"bytes"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/pprof/profile"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/testenv"
)

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the node agent (eBPF) and real cgroups need root: run the tests as root")
	}
}

// Node names of testenv's kwok nodes.
const (
	agentNode   = "kwok-node-0" // the real agent runs for it
	noAgentNode = "kwok-node-1" // no agent: metrics-server's
	noRBACNode  = "kwok-node-2" // an agent whose ServiceAccount has no role
)

func TestCatchTheSpike(t *testing.T) {
	requireRoot(t)
	testenv.CgroupV1Mounts(t)
	// metrics-server at a 15 s resolution, a common production setting, over CPU counters
	// that integrate usage as a kernel's do: its rate of a 10 s spike is at most 10/15 of
	// the spike, below the threshold here.
	s := startStack(t, 3, 15*time.Second, agentNode, noRBACNode)
	stopOperator := s.runOperator(t)
	ag := s.startAgent(t, agentNode, "", true)

	t.Run("a 10 s CPU spike is caught from the node, with the eBPF profile of the seconds before; metrics-server misses it", func(t *testing.T) {
		const ns = "spike"
		s.createConfig(t, ns, "checkout", profilingv1alpha1.SourceAuto, 10*time.Minute, 3)
		hot := s.startApp(t, ns, "hot", agentNode, "200m", "1Gi", true, nil)
		far := s.startApp(t, ns, "far", noAgentNode, "200m", "1Gi", false, nil)
		s.c.SetUsage(t, ns, "far", "10m", "10Mi")
		s.waitMetricsServer(t, ns, "far")

		// The same spike on both: 10 s at 190m (95% of the request) on far, as kwok reports
		// it to metrics-server; 10 s of one busy core (500%) in hot's real cgroup.
		start := time.Now()
		hot.load(t, "cpu=10s&workers=1")
		s.c.SetUsage(t, ns, "far", "190m", "")
		time.Sleep(10 * time.Second) // the spike's length: shapes the load, waits for no state
		s.c.SetUsage(t, ns, "far", "10m", "")
		spikeEnd := time.Now()

		pcs := s.waitCaptures(t, ns, "hot", 1, 30*time.Second)
		pc := pcs[0]
		if pc.Spec.Trigger != profilingv1alpha1.TriggerThreshold || pc.Spec.Threshold == nil ||
			pc.Spec.Threshold.Source != profilingv1alpha1.SourceAgent || pc.Spec.Threshold.Resource != "cpu" {
			t.Fatalf("ProfileCapture %s spec %+v (threshold %+v), want a cpu Threshold capture from the agent", pc.Name, pc.Spec, pc.Spec.Threshold)
		}
		crossedAt := pc.Spec.Threshold.CrossedAt.Time
		done := s.waitFinished(t, ns, pc.Name, 2*time.Minute)
		reached := hot.hits.firstAfter(start)
		t.Logf("spike started %s; crossing read %s later (%s); the pod's first pprof request %s after the crossing",
			start.Format(time.RFC3339Nano), crossedAt.Sub(start).Round(time.Millisecond), pc.Spec.Reason, reached.Sub(crossedAt).Round(time.Millisecond))
		if crossedAt.Before(start.Add(-time.Second)) || crossedAt.After(start.Add(10*time.Second)) {
			t.Errorf("crossing read at %s, want within the spike [%s, +10s]", crossedAt, start)
		}
		if done.Status.Phase != profilingv1alpha1.CaptureStored {
			t.Fatalf("ProfileCapture %s ended %s: %s", pc.Name, done.Status.Phase, done.Status.Message)
		}
		if got := storedTypes(done); !slices.Equal(got, []string{"cpu", "ebpf-cpu", "heap"}) {
			t.Errorf("stored %v, want cpu, ebpf-cpu and heap", got)
		}
		if c := meta.FindStatusCondition(done.Status.Conditions, profilingv1alpha1.ConditionFlightRecorder); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("FlightRecorder condition %+v, want True", c)
		}
		if reached.IsZero() || reached.Before(crossedAt) {
			t.Errorf("the pod's first pprof request at %s, want one after the crossing at %s", reached, crossedAt)
		}

		// The eBPF profile covers the recorder's window before the crossing, which no pprof
		// request can: the app's own CPU profile starts at `reached`. Its time is the burn.
		ebpf := readProfile(t, done, profilingv1alpha1.ProfileTypeEBPFCPU)
		from := time.Unix(0, ebpf.TimeNanos)
		to := from.Add(time.Duration(ebpf.DurationNanos))
		t.Logf("ebpf-cpu profile covers [%s, %s] (crossing at %s): %d samples", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano),
			crossedAt.Format(time.RFC3339Nano), len(ebpf.Sample))
		if !from.Before(crossedAt.Add(-window / 2)) {
			t.Errorf("the eBPF profile starts at %s, want at least %s before the crossing at %s", from, window/2, crossedAt)
		}
		if !from.Before(start) {
			t.Errorf("the eBPF profile starts at %s, after the spike began (%s): the seconds before are missing", from, start)
		}
		if share := functionShare(ebpf, "burnCPU"); share < 0.5 {
			t.Errorf("burnCPU has %.0f%% of the eBPF profile's CPU time, want the most of it", 100*share)
		}
		if got := len(s.captures(t, ns, "hot")); got != 1 {
			t.Errorf("%d ProfileCaptures of hot, want 1 (the agent holds back repeats)", got)
		}

		// metrics-server's path: nothing for far during the spike and for three resolutions
		// and a check interval after it.
		quiet := spikeEnd.Add(3*15*time.Second + 10*time.Second)
		for time.Now().Before(quiet) {
			if got := s.captures(t, ns, "far"); len(got) != 0 {
				t.Fatalf("metrics-server's path caught the 10 s spike of far: %s (%s)", got[0].Name, got[0].Spec.Reason)
			}
			time.Sleep(time.Second) // a check of an absence over a span of time
		}
		// The same path does catch a sustained crossing: it was working, only slow.
		sustained := time.Now()
		s.c.SetUsage(t, ns, "far", "190m", "")
		farPC := s.waitCaptures(t, ns, "far", 1, 2*time.Minute)[0]
		if farPC.Spec.Threshold == nil || farPC.Spec.Threshold.Source != profilingv1alpha1.SourceMetricsServer {
			t.Errorf("far's ProfileCapture spec %+v, want a Threshold capture from metrics-server", farPC.Spec)
		}
		farDone := s.waitFinished(t, ns, farPC.Name, 2*time.Minute)
		t.Logf("metrics-server's path: a sustained crossing of far caught after %s; its 10 s spike was missed; far's capture %s: %s",
			far.hits.firstAfter(sustained).Sub(sustained).Round(time.Millisecond), farDone.Status.Phase, farDone.Status.Message)
		s.c.SetUsage(t, ns, "far", "10m", "")
	})

	t.Run("a memory climb crosses the memory threshold and gets one heap profile", func(t *testing.T) {
		const ns = "climb"
		s.createConfig(t, ns, "climb", profilingv1alpha1.SourceAgent, 10*time.Minute, 2)
		climb := s.startApp(t, ns, "climb", agentNode, "4", "128Mi", true, nil) // 4 cores: CPU cannot cross
		climb.load(t, "mem=96MiB&hold=2m")                                      // 75% of the request, past 50%
		pc := s.waitCaptures(t, ns, "climb", 1, 30*time.Second)[0]
		if pc.Spec.Threshold == nil || pc.Spec.Threshold.Resource != "memory" || pc.Spec.Threshold.Source != profilingv1alpha1.SourceAgent {
			t.Fatalf("ProfileCapture spec %+v, want a memory crossing from the agent", pc.Spec)
		}
		done := s.waitFinished(t, ns, pc.Name, 2*time.Minute)
		if done.Status.Phase != profilingv1alpha1.CaptureStored || !slices.Contains(storedTypes(done), "heap") {
			t.Fatalf("ProfileCapture %s ended %s with %v: %s, want a stored heap profile", pc.Name, done.Status.Phase, storedTypes(done), done.Status.Message)
		}
		heap := readProfile(t, done, "heap")
		if share := functionShare(heap, "allocateMemory"); share < 0.5 {
			t.Errorf("allocateMemory holds %.0f%% of the heap profile's in-use bytes, want the most of it", 100*share)
		}
		t.Logf("memory climb caught: %s", pc.Spec.Reason)
	})

	t.Run("users' captures: with and without an agent, refused ones, an agent without RBAC, TTL", func(t *testing.T) {
		const ns = "users"
		s.createConfig(t, ns, "users", profilingv1alpha1.SourceAgent, 10*time.Minute, 2)
		s.startApp(t, ns, "with-agent", agentNode, "4", "1Gi", true, nil)
		s.startApp(t, ns, "no-agent", noAgentNode, "4", "1Gi", false, nil)
		s.startApp(t, ns, "opted-out", agentNode, "4", "1Gi", true, map[string]string{profilingv1alpha1.AnnotationEnabled: "false"})
		s.startApp(t, ns, "no-rbac", noRBACNode, "4", "1Gi", false, nil)
		s.startAgent(t, noRBACNode, s.c.ServiceAccountKubeconfig(t, ns, "no-role"), false)

		for _, tc := range []struct {
			pod       string
			phase     profilingv1alpha1.CapturePhase
			types     []string
			inMessage string
		}{
			{"with-agent", profilingv1alpha1.CaptureStored, []string{"cpu", "ebpf-cpu"}, ""},
			{"no-agent", profilingv1alpha1.CaptureStored, []string{"cpu"}, ""},
			{"opted-out", profilingv1alpha1.CaptureFailed, nil, profilingv1alpha1.AnnotationEnabled},
			{"gone", profilingv1alpha1.CaptureFailed, nil, "does not exist"},
			{"no-rbac", profilingv1alpha1.CaptureFailed, []string{"cpu"}, "forbidden"},
		} {
			pc := s.requestCapture(t, ns, tc.pod, nil)
			done := s.waitFinished(t, ns, pc.Name, 2*time.Minute)
			t.Logf("%s: %s, %v: %s", tc.pod, done.Status.Phase, storedTypes(done), done.Status.Message)
			if done.Status.Phase != tc.phase || !slices.Equal(storedTypes(done), tc.types) || !strings.Contains(done.Status.Message, tc.inMessage) {
				t.Errorf("capture of %s ended %s with %v: %q; want %s with %v, the message naming %q",
					tc.pod, done.Status.Phase, storedTypes(done), done.Status.Message, tc.phase, tc.types, tc.inMessage)
			}
			if tc.pod == "no-agent" {
				if c := meta.FindStatusCondition(done.Status.Conditions, profilingv1alpha1.ConditionFlightRecorder); c == nil || c.Reason != "NoAgent" {
					t.Errorf("FlightRecorder condition %+v, want reason NoAgent", c)
				}
			}
			if tc.pod == "no-rbac" && !strings.Contains(done.Status.Message, noRBACNode) {
				t.Errorf("message %q does not name the node %s", done.Status.Message, noRBACNode)
			}
		}

		pc := s.requestCapture(t, ns, "with-agent", ptr.To[int32](3))
		s.waitFinished(t, ns, pc.Name, 2*time.Minute)
		testenv.Eventually(t, time.Minute, func() (bool, string) {
			for _, c := range s.captures(t, ns, "with-agent") {
				if c.Name == pc.Name {
					return false, "the ProfileCapture with ttlSecondsAfterFinished 3 is still there"
				}
			}
			return true, ""
		})
	})

	t.Run("a flapping pod makes one capture per cooldown, across an agent and an operator restart", func(t *testing.T) {
		const ns = "flap"
		const cooldown = 90 * time.Second
		s.createConfig(t, ns, "flap", profilingv1alpha1.SourceAgent, cooldown, 2)
		flap := s.startApp(t, ns, "flap", agentNode, "200m", "1Gi", true, nil)
		for range 4 { // 2 s hot, 2 s cool
			flap.load(t, "cpu=2s&workers=1")
			time.Sleep(4 * time.Second) // shapes the load
		}
		first := s.waitCaptures(t, ns, "flap", 1, 10*time.Second)[0]
		firstAt := first.Spec.Threshold.CrossedAt.Time
		s.waitFinished(t, ns, first.Name, 2*time.Minute)

		// A new agent knows nothing of its predecessor: the config's status.lastTriggers
		// holds it back.
		ag.stop()
		ag = s.startAgent(t, agentNode, "", true)
		suppressed := func() float64 {
			return counter(t, ag.reg, "kprof_agent_threshold_suppressed_total", map[string]string{"reason": "cooldown"})
		}
		flap.load(t, "cpu=5s&workers=1")
		testenv.Eventually(t, 30*time.Second, func() (bool, string) {
			n := suppressed()
			return n >= 2, "cooldown suppressions of the restarted agent: " + ftoa(n)
		})

		// A new operator knows nothing of its predecessor either: a Threshold capture inside
		// the cooldown (as an agent that had not seen the status yet would create) is Skipped.
		stopOperator()
		s.runOperator(t) // stopped when the test ends
		late := s.thresholdCapture(t, ns, "flap")
		if done := s.waitFinished(t, ns, late.Name, time.Minute); done.Status.Phase != profilingv1alpha1.CaptureSkipped || !strings.Contains(done.Status.Message, "cooldown") {
			t.Errorf("a Threshold capture inside the cooldown after an operator restart ended %s: %q, want Skipped for the cooldown", done.Status.Phase, done.Status.Message)
		}
		if n := len(s.captures(t, ns, "flap")); n != 2 {
			t.Errorf("%d ProfileCaptures of flap inside the cooldown, want the first and the injected one", n)
		}

		// After the cooldown the pod is captured again.
		testenv.Eventually(t, cooldown+time.Minute, func() (bool, string) {
			if time.Since(firstAt) > cooldown {
				flap.load(t, "cpu=2s&workers=1")
			}
			got := s.captures(t, ns, "flap")
			return len(got) == 3, "ProfileCaptures of flap: " + itoa(len(got))
		})
		for _, c := range s.captures(t, ns, "flap") {
			if c.Name != first.Name && c.Name != late.Name && c.Spec.Threshold.CrossedAt.Time.Sub(firstAt) < cooldown {
				t.Errorf("second capture %s crossed %s after the first, inside the %s cooldown", c.Name, c.Spec.Threshold.CrossedAt.Sub(firstAt), cooldown)
			}
		}
	})
}

// storedTypes returns the sorted types of the capture's stored profiles.
func storedTypes(pc profilingv1alpha1.ProfileCapture) []string {
	var out []string
	for _, p := range pc.Status.Profiles {
		out = append(out, p.Type)
	}
	slices.Sort(out)
	return out
}

// readProfile parses the stored profile of type typ of pc (a file:// location).
func readProfile(t *testing.T, pc profilingv1alpha1.ProfileCapture, typ string) *profile.Profile {
	t.Helper()
	for _, p := range pc.Status.Profiles {
		if p.Type != typ {
			continue
		}
		u, err := url.Parse(p.Location)
		if err != nil || u.Scheme != "file" {
			t.Fatalf("location %q of the %s profile: want file://", p.Location, typ)
		}
		data, err := os.ReadFile(u.Path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(data)) != p.Size {
			t.Errorf("%s profile: %d bytes stored, status says %d", typ, len(data), p.Size)
		}
		prof, err := profile.Parse(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("parse the %s profile %s: %v", typ, u.Path, err)
		}
		return prof
	}
	t.Fatalf("ProfileCapture %s stored no %s profile (%v)", pc.Name, typ, storedTypes(pc))
	return nil
}

// functionShare is the share of the profile's last sample value (CPU time, in-use bytes) in
// stacks through a function whose name contains fn.
func functionShare(p *profile.Profile, fn string) float64 {
	var total, in int64
	last := len(p.SampleType) - 1
	for _, s := range p.Sample {
		v := s.Value[last]
		total += v
	frames:
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function != nil && strings.Contains(l.Function.Name, fn) {
					in += v
					break frames
				}
			}
		}
	}
	if total == 0 {
		return 0
	}
	return float64(in) / float64(total)
}
