package operator_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/storage"
)

func onDemand(interval int32) *profilingv1alpha1.OnDemand {
	return &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: interval}
}

func TestScheduledCaptureStoresProfilesOfSelectedPods(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "team-a"
	createNamespace(t, ns)
	web := map[string]string{"app": "web"}

	portA1 := startSampleApp(t, "127.0.0.11")
	portA2 := startSampleApp(t, "127.0.0.12")
	// Pods that must not be captured, each with a server that counts requests.
	wrongLabel := startProbeServer(t, "127.0.0.13", nil)
	notAnnotated := startProbeServer(t, "127.0.0.14", nil)
	notReady := startProbeServer(t, "127.0.0.16", nil)

	createPod(t, ns, podSpec{name: "web-1", labels: web, annotated: true, ip: "127.0.0.11", port: portA1, ready: true})
	createPod(t, ns, podSpec{name: "web-2", labels: web, annotated: true, ip: "127.0.0.12", port: portA2, ready: true})
	createPod(t, ns, podSpec{name: "other-1", labels: map[string]string{"app": "other"}, annotated: true, ip: "127.0.0.13", port: wrongLabel.port, ready: true})
	createPod(t, ns, podSpec{name: "web-plain", labels: web, annotated: false, ip: "127.0.0.14", port: notAnnotated.port, ready: true})
	createPod(t, ns, podSpec{name: "web-pending", labels: web, annotated: true, phase: corev1.PodPending})
	createPod(t, ns, podSpec{name: "web-unready", labels: web, annotated: true, ip: "127.0.0.16", port: notReady.port, ready: false})

	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Selector:                  profilingv1alpha1.ProfilingSelector{LabelSelector: &metav1.LabelSelector{MatchLabels: web}},
			OnDemand:                  onDemand(30),
			ProfileTypes:              []profilingv1alpha1.ProfileType{"cpu", "heap", "goroutine"},
			CPUProfileDurationSeconds: 1,
			LocalStorage:              &profilingv1alpha1.LocalStorage{Path: "team-a", Prefix: "dev"},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}

	t.Run("status counts exactly the annotated, matching, running and ready pods", func(t *testing.T) {
		eventually(t, 20*time.Second, "activePods == 2", func() error {
			var got profilingv1alpha1.ProfilingConfig
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return err
			}
			if got.Status.ActivePods != 2 {
				return fmt.Errorf("activePods = %d", got.Status.ActivePods)
			}
			c := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionReady)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "TargetsSelected" {
				return fmt.Errorf("Ready condition = %+v", c)
			}
			if !strings.Contains(c.Message, "1 NotReady") || !strings.Contains(c.Message, "1 NotRunning") {
				return fmt.Errorf("Ready message does not explain skipped pods: %q", c.Message)
			}
			return nil
		})
	})

	dir := filepath.Join(profilesDir, "team-a")
	t.Run("every type of every selected pod is stored and opens with go tool pprof", func(t *testing.T) {
		// The first round starts within one interval (30s, jittered) of selection.
		eventually(t, 60*time.Second, "6 profiles stored", func() error {
			if n := len(profileFiles(t, dir)); n < 6 {
				return fmt.Errorf("%d profiles stored", n)
			}
			return nil
		})
		seen := map[string]bool{}
		for _, f := range profileFiles(t, dir) {
			var m storage.Meta
			raw, err := os.ReadFile(f + ".json")
			if err != nil {
				t.Fatalf("metadata of %s: %v", f, err)
			}
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("metadata of %s: %v", f, err)
			}
			seen[m.Pod+"/"+m.Type] = true
			if m.Namespace != ns || m.Service != "web-1" && m.Service != "web-2" || m.Node != "node-1" || m.Reason != "schedule" || m.Container != "app" {
				t.Errorf("metadata of %s = %+v", f, m)
			}
			want := storage.RenderKey(storage.DefaultKeyTemplate, "dev", m)
			if rel, _ := filepath.Rel(dir, f); filepath.ToSlash(rel) != want {
				t.Errorf("stored at %s, want key %s", rel, want)
			}
			out, err := exec.Command("go", "tool", "pprof", "-raw", f).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte("Samples")) && !bytes.Contains(out, []byte("PeriodType")) {
				t.Errorf("go tool pprof -raw %s: %v\n%.400s", f, err, out)
			}
		}
		for _, pod := range []string{"web-1", "web-2"} {
			for _, typ := range []string{"cpu", "heap", "goroutine"} {
				if !seen[pod+"/"+typ] {
					t.Errorf("no %s profile of %s stored", typ, pod)
				}
			}
		}
	})

	t.Run("pods outside the selection are never contacted", func(t *testing.T) {
		for name, p := range map[string]*probeServer{"other-1": wrongLabel, "web-plain": notAnnotated, "web-unready": notReady} {
			if n := p.requests.Load(); n != 0 {
				t.Errorf("%s got %d requests", name, n)
			}
		}
	})

	t.Run("status totals match the stored profiles and the Capturing condition is true", func(t *testing.T) {
		eventually(t, 20*time.Second, "totalProfiles == stored files", func() error {
			var got profilingv1alpha1.ProfilingConfig
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return err
			}
			stored := len(profileFiles(t, dir))
			if got.Status.TotalProfiles != int64(stored) {
				return fmt.Errorf("totalProfiles = %d, stored = %d", got.Status.TotalProfiles, stored)
			}
			if got.Status.TotalFailures != 0 {
				return fmt.Errorf("totalFailures = %d", got.Status.TotalFailures)
			}
			if got.Status.LastProfileTime == nil {
				return fmt.Errorf("lastProfileTime not set")
			}
			if got.Status.ObservedGeneration != got.Generation {
				return fmt.Errorf("observedGeneration %d != generation %d", got.Status.ObservedGeneration, got.Generation)
			}
			c := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionCapturing)
			if c == nil || c.Status != metav1.ConditionTrue || c.Reason != "CaptureSucceeded" {
				return fmt.Errorf("Capturing condition = %+v", c)
			}
			return nil
		})
	})

	t.Run("the config's ProfileCaptured Event summarizes the captures, and a pod that never failed gets none", func(t *testing.T) {
		summary := regexp.MustCompile(`^captured \d+ profiles from [12] pods in the last 2s$`)
		eventually(t, 20*time.Second, "summary event", func() error {
			evs := listEvents(ctx, ns, "ProfilingConfig", "web", "ProfileCaptured")
			if len(evs) != 1 {
				return fmt.Errorf("%d ProfileCaptured Events on ProfilingConfig web, want one summary", len(evs))
			}
			if !summary.MatchString(evs[0].Note) {
				return fmt.Errorf("ProfileCaptured note %q, want it to match %s", evs[0].Note, summary)
			}
			return nil
		})
		for _, pod := range []string{"web-1", "web-2"} {
			for _, reason := range []string{"ProfileCaptured", "CaptureFailed", "CaptureRecovered"} {
				if n := countEvents(ctx, ns, "Pod", pod, reason); n != 0 {
					t.Errorf("%d %s Events on pod %s, want none: its captures never failed", n, reason, pod)
				}
			}
		}
	})
}

func TestDeletingPodOrConfigCancelsItsCaptures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "team-b"
	createNamespace(t, ns)
	p1 := startProbeServer(t, "127.0.0.21", nil)
	p2 := startProbeServer(t, "127.0.0.22", nil)
	pod1 := createPod(t, ns, podSpec{name: "slow-1", annotated: true, ip: "127.0.0.21", port: p1.port, ready: true})
	createPod(t, ns, podSpec{name: "slow-2", annotated: true, ip: "127.0.0.22", port: p2.port, ready: true})
	// 22 s CPU profiles (the longest an interval of 30 s allows): long enough that a
	// deletion always lands while one is being recorded.
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "slow"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:                  onDemand(30),
			ProfileTypes:              []profilingv1alpha1.ProfileType{"cpu"},
			CPUProfileDurationSeconds: 22,
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}

	// Profiles of slow-N stored before its deletion came from captures that
	// finished (on a loaded machine a 22 s profile can); the cancelled ones add none.
	podFiles := func(pod string) []string {
		var out []string
		for _, f := range profileFiles(t, profilesDir) {
			if containsPod([]string{f}, pod) {
				out = append(out, f)
			}
		}
		return out
	}
	var before1, before2 []string
	t.Run("deleting a pod cancels its in-flight CPU profile", func(t *testing.T) {
		waitClosed(t, p1.inFlight, 45*time.Second, "CPU profile request to slow-1")
		before1 = podFiles("slow-1")
		if err := k8sClient.Delete(ctx, pod1); err != nil {
			t.Fatalf("delete pod: %v", err)
		}
		waitClosed(t, p1.cancelled, 15*time.Second, "cancellation of slow-1's CPU profile")
	})
	t.Run("deleting the config cancels the captures of its remaining pods", func(t *testing.T) {
		// slow-2's first request may have ended while slow-1 was deleted on a loaded
		// machine; delete the config while one is recording with most of it ahead.
		eventually(t, 60*time.Second, "a fresh CPU profile request to slow-2", func() error {
			if !p2.recordingSince(5 * time.Second) {
				return fmt.Errorf("no CPU profile of slow-2 started in the last 5s is being recorded")
			}
			return nil
		})
		before2 = podFiles("slow-2")
		if err := k8sClient.Delete(ctx, pc); err != nil {
			t.Fatalf("delete ProfilingConfig: %v", err)
		}
		waitClosed(t, p2.cancelled, 15*time.Second, "cancellation of slow-2's CPU profile")
	})
	t.Run("a cancelled capture stores nothing", func(t *testing.T) {
		if got := podFiles("slow-1"); !slices.Equal(got, before1) {
			t.Errorf("slow-1's cancelled capture left a profile: %v, before the deletion %v", got, before1)
		}
		if got := podFiles("slow-2"); !slices.Equal(got, before2) {
			t.Errorf("slow-2's cancelled capture left a profile: %v, before the deletion %v", got, before2)
		}
	})
}

func TestHostileTargetsFailWithAClearReason(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "team-c"
	createNamespace(t, ns)
	healthy := startProbeServer(t, "127.0.0.31", nil)
	hostile := map[string]struct {
		ip      string
		handler http.HandlerFunc
		reason  string
	}{
		"hangs": {"127.0.0.32", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "Timeout"},
		"fails": {"127.0.0.33", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) }, "HTTPStatus"},
		"garbage": {"127.0.0.34", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte("<html>this is not a profile</html>"))
		}, "NotPprof"},
		"endless": {"127.0.0.35", func(w http.ResponseWriter, r *http.Request) {
			chunk := bytes.Repeat([]byte{0x42}, 64<<10)
			for r.Context().Err() == nil {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "TooLarge"},
	}
	createPod(t, ns, podSpec{name: "healthy", annotated: true, ip: "127.0.0.31", port: healthy.port, ready: true})
	for name, h := range hostile {
		p := startProbeServer(t, h.ip, h.handler)
		createPod(t, ns, podSpec{name: name, annotated: true, ip: h.ip, port: p.port, ready: true})
	}
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mixed"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfilingConfig: %v", err)
	}
	for name, h := range hostile {
		t.Run(name+" ends in a CaptureFailed event that says "+h.reason, func(t *testing.T) {
			eventually(t, 60*time.Second, "CaptureFailed event on "+name, func() error {
				for _, e := range listEvents(ctx, ns, "Pod", name, "CaptureFailed") {
					if strings.Contains(e.Note, "("+h.reason+")") {
						return nil
					}
				}
				return fmt.Errorf("no CaptureFailed event naming %s", h.reason)
			})
			if v := counterValue(t, "kprof_capture_failures_total", map[string]string{"type": "heap", "reason": h.reason}); v < 1 {
				t.Errorf("kprof_capture_failures_total{reason=%q} = %v", h.reason, v)
			}
		})
	}
	t.Run("the healthy pod beside them is captured, and the config's summaries count both", func(t *testing.T) {
		// Each interval's summary replaces the last one's note: gather the kinds seen.
		counted := map[string]bool{}
		eventually(t, 90*time.Second, "summary events", func() error {
			ok := listEvents(ctx, ns, "ProfilingConfig", "mixed", "ProfileCaptured")
			if len(ok) != 1 || !strings.Contains(ok[0].Note, "from 1 pods") {
				return fmt.Errorf("ProfileCaptured Events on the config: %q, want one naming 1 pod (the healthy one)", notes(ok))
			}
			failed := listEvents(ctx, ns, "ProfilingConfig", "mixed", "CaptureFailed")
			if len(failed) != 1 {
				return fmt.Errorf("%d CaptureFailed Events on the config, want one summary", len(failed))
			}
			for _, h := range hostile {
				if strings.Contains(failed[0].Note, h.reason+" ") {
					counted[h.reason] = true
				}
			}
			for _, h := range hostile {
				if !counted[h.reason] {
					return fmt.Errorf("no CaptureFailed summary counted %s yet (last: %q)", h.reason, failed[0].Note)
				}
			}
			return nil
		})
		if n := countEvents(ctx, ns, "Pod", "healthy", "CaptureFailed"); n != 0 {
			t.Errorf("%d CaptureFailed Events on the healthy pod", n)
		}
	})
	t.Run("the config reports the failures in status", func(t *testing.T) {
		eventually(t, 20*time.Second, "totalFailures >= 4", func() error {
			var got profilingv1alpha1.ProfilingConfig
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(pc), &got); err != nil {
				return err
			}
			if got.Status.TotalFailures < 4 || got.Status.TotalProfiles < 1 {
				return fmt.Errorf("totalFailures = %d, totalProfiles = %d", got.Status.TotalFailures, got.Status.TotalProfiles)
			}
			return nil
		})
	})
}

func TestInvalidProfilingConfigsAreRejectedNamingTheField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "invalid"
	createNamespace(t, ns)
	cases := []struct {
		name  string
		spec  string // JSON spec, so values the Go types would not express can be sent
		field string // must appear in the API server's message
	}{
		{"a cpu threshold of 150 percent", `{"thresholds":{"cpuThresholdPercent":150}}`, "spec.thresholds.cpuThresholdPercent"},
		{"a memory threshold of 0 percent", `{"thresholds":{"memoryThresholdPercent":0}}`, "spec.thresholds.memoryThresholdPercent"},
		{"a check interval of 5 seconds", `{"thresholds":{"checkIntervalSeconds":5}}`, "spec.thresholds.checkIntervalSeconds"},
		{"a cooldown of 10 seconds", `{"thresholds":{"cooldownSeconds":10}}`, "spec.thresholds.cooldownSeconds"},
		{"an on-demand interval of 5 seconds", `{"onDemand":{"enabled":true,"intervalSeconds":5}}`, "spec.onDemand.intervalSeconds"},
		{"an unknown profile type", `{"profileTypes":["cpu","flamegraph"]}`, "spec.profileTypes[1]"},
		{"a duplicated profile type", `{"profileTypes":["cpu","cpu"]}`, "spec.profileTypes[1]"},
		{"a CPU profile as long as the interval", `{"onDemand":{"enabled":true,"intervalSeconds":30},"cpuProfileDurationSeconds":30}`,
			"spec.cpuProfileDurationSeconds: Invalid value: cpuProfileDurationSeconds must be at most onDemand.intervalSeconds - ceil(onDemand.intervalSeconds/10) - 5 (22 at the minimum interval of 30"},
		{"a CPU profile one second over the bound", `{"onDemand":{"enabled":true,"intervalSeconds":60},"cpuProfileDurationSeconds":50}`, "spec.cpuProfileDurationSeconds"},
		{"a CPU profile one second over the bound at the minimum interval", `{"onDemand":{"enabled":true,"intervalSeconds":30},"cpuProfileDurationSeconds":23}`, "spec.cpuProfileDurationSeconds"},
		{"both S3 and local storage", `{"s3Config":{"bucket":"profiles"},"localStorage":{"path":"x"}}`, "set at most one of s3Config and localStorage"},
		{"a local path that escapes the profiles directory", `{"localStorage":{"path":"a/../../etc"}}`, "spec.localStorage.path"},
		{"an absolute local path", `{"localStorage":{"path":"/etc"}}`, "spec.localStorage.path"},
		{"a key template without a timestamp", `{"keyTemplate":"{namespace}/{type}.pb.gz"}`, "spec.keyTemplate"},
		{"a key template with a placeholder spelt with a hyphen", `{"keyTemplate":"{service-name}/{timestamp}_{type}"}`,
			"keyTemplate: unknown placeholder {service-name} (known: {prefix} {namespace} {service} {pod} {node} {container} {target} {type} {date} {timestamp} {unix})"},
		{"a key template with two unknown placeholders, naming the first", `{"keyTemplate":"{Pod}/{}/{timestamp}_{type}"}`, "spec.keyTemplate: Invalid value: \"{Pod}/{}/{timestamp}_{type}\": keyTemplate: unknown placeholder {Pod} (known:"},
		{"a key template with only an empty placeholder", `{"keyTemplate":"{}/{timestamp}_{type}"}`, "keyTemplate: unknown placeholder {} (known:"},
		{"an S3 endpoint that is not a URL", `{"s3Config":{"bucket":"profiles","endpoint":"minio:9000"}}`, "spec.s3Config.endpoint"},
	}
	for i, tc := range cases {
		t.Run("rejects "+tc.name, func(t *testing.T) {
			body := fmt.Sprintf(`{"apiVersion":"profiling.io/v1alpha1","kind":"ProfilingConfig","metadata":{"name":"bad-%d","namespace":%q},"spec":%s}`, i, ns, tc.spec)
			err := clientset.RESTClient().Post().AbsPath("/apis/profiling.io/v1alpha1/namespaces", ns, "profilingconfigs").
				SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error()
			if err == nil {
				t.Fatalf("API server accepted %s", tc.spec)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("message does not name %q: %v", tc.field, err)
			}
		})
	}
	t.Run("accepts a minimal config and fills in the defaults", func(t *testing.T) {
		pc := &profilingv1alpha1.ProfilingConfig{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "minimal"},
			Spec: profilingv1alpha1.ProfilingConfigSpec{
				Thresholds: &profilingv1alpha1.Thresholds{},
				OnDemand:   &profilingv1alpha1.OnDemand{Enabled: true},
			},
		}
		if err := k8sClient.Create(ctx, pc); err != nil {
			t.Fatalf("create: %v", err)
		}
		s := pc.Spec
		if len(s.ProfileTypes) != 2 || s.ProfileTypes[0] != "cpu" || s.ProfileTypes[1] != "heap" || s.CPUProfileDurationSeconds != 0 ||
			s.OnDemand.IntervalSeconds != 60 || s.Thresholds.Enabled == nil || !*s.Thresholds.Enabled || s.Thresholds.CPUThresholdPercent != 80 ||
			s.Thresholds.MemoryThresholdPercent != 90 || s.Thresholds.CheckIntervalSeconds != 30 || s.Thresholds.CooldownSeconds != 300 {
			t.Fatalf("defaults not applied: %+v thresholds=%+v onDemand=%+v", s, s.Thresholds, s.OnDemand)
		}
	})
	for _, tc := range []struct{ name, spec string }{
		{"the seed's config: CPU and heap every 30 s", `{"onDemand":{"enabled":true,"intervalSeconds":30},"profileTypes":["cpu","heap"]}`},
		{"a CPU profile of exactly the bound", `{"onDemand":{"enabled":true,"intervalSeconds":30},"cpuProfileDurationSeconds":22}`},
		{"a long CPU profile without a schedule", `{"onDemand":{"enabled":false,"intervalSeconds":30},"cpuProfileDurationSeconds":300}`},
		{"a long CPU profile when cpu is not profiled", `{"onDemand":{"enabled":true,"intervalSeconds":30},"profileTypes":["heap"],"cpuProfileDurationSeconds":300}`},
		{"a key template using every placeholder", `{"keyTemplate":"{prefix}/{namespace}/{service}/{pod}/{node}/{container}/{target}/{date}/{timestamp}_{unix}_{type}.pb.gz"}`},
	} {
		t.Run("accepts "+tc.name, func(t *testing.T) {
			name := "good-" + strings.NewReplacer(" ", "-", ":", "", "'", "").Replace(strings.ToLower(tc.name))
			body := fmt.Sprintf(`{"apiVersion":"profiling.io/v1alpha1","kind":"ProfilingConfig","metadata":{"name":%q,"namespace":%q},"spec":%s}`, name, ns, tc.spec)
			if err := clientset.RESTClient().Post().AbsPath("/apis/profiling.io/v1alpha1/namespaces", ns, "profilingconfigs").
				SetHeader("Content-Type", "application/json").Body([]byte(body)).Do(ctx).Error(); err != nil {
				t.Fatalf("API server rejected %s: %v", tc.spec, err)
			}
		})
	}
}

func waitClosed(t *testing.T, ch <-chan struct{}, timeout time.Duration, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(timeout):
		t.Fatalf("%s: did not happen within %s", what, timeout)
	}
}

func containsPod(files []string, podPrefix string) bool {
	for _, f := range files {
		if strings.Contains(filepath.Base(f), "_"+podPrefix) {
			return true
		}
	}
	return false
}

func listEvents(ctx context.Context, ns, kind, name, reason string) []eventsv1.Event {
	var list eventsv1.EventList
	if err := k8sClient.List(ctx, &list, client.InNamespace(ns)); err != nil {
		return nil
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

func notes(evs []eventsv1.Event) []string {
	out := make([]string, 0, len(evs))
	for _, e := range evs {
		out = append(out, e.Note)
	}
	return out
}

func countEvents(ctx context.Context, ns, kind, name, reason string) int {
	return len(listEvents(ctx, ns, kind, name, reason))
}

// counterValue sums a counter from the operator's registry over series whose labels include want.
func counterValue(t *testing.T, name string, want map[string]string) float64 {
	t.Helper()
	return counterIn(t, registry, name, want)
}

// counterIn sums a counter from reg over series whose labels include want.
func counterIn(t *testing.T, reg prometheus.Gatherer, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if labelsMatch(m.Label, want) {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func labelsMatch(got []*dto.LabelPair, want map[string]string) bool {
	n := 0
	for _, l := range got {
		if v, ok := want[l.GetName()]; ok {
			if v != l.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(want)
}
