package nodethreshold

import (
	"errors"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// burn feeds readings every second from sec to sec+n-1 in which container main of pod A
// uses cores (its counter grows by cores each second).
func (h *harness) burn(from, n int, cores float64, base *float64) {
	for s := from; s < from+n; s++ {
		*base += cores
		h.observe(reading(float64(s), cpu(uidA, cidA, "main", *base)))
	}
}

// A pod crossing its CPU threshold gets one ProfileCapture with the crossing in its spec
// (design §A), and its recorded data pinned from crossedAt − window.
func TestCrossingCreatesOneProfileCapture(t *testing.T) {
	h := newHarness(t)
	h.pods[uidA] = runningPod("shop-7d9f", uidA, ctr("main", "100m", "", "", ""))
	h.api.set(config("shop", cpuAt80()))

	var used float64
	h.burn(0, 1, 0, &used)      // first reading: no rate yet
	h.burn(1, 3, 0.079, &used)  // 79% of the request: below
	h.burn(4, 1, 0.093, &used)  // 93%: crosses at t0+4s
	h.burn(5, 10, 0.095, &used) // still above: inside the cooldown

	got := h.api.captures()
	if len(got) != 1 {
		t.Fatalf("%d ProfileCaptures, want 1: %+v", len(got), got)
	}
	pc := got[0]
	crossedAt := t0.Add(4 * time.Second)
	wantSpec := profilingv1alpha1.ProfileCaptureSpec{
		Pod:             "shop-7d9f",
		Reason:          "cpu 93% of request ≥ 80%",
		ProfilingConfig: &profilingv1alpha1.ProfilingConfigReference{Namespace: "apps", Name: "shop"},
		Requester:       "kprof-agent/node-1",
		Trigger:         profilingv1alpha1.TriggerThreshold,
		Threshold: &profilingv1alpha1.ThresholdCrossing{Source: profilingv1alpha1.SourceAgent, Resource: "cpu",
			Container: "main", CrossedAt: metav1.NewMicroTime(crossedAt)},
	}
	if pc.Namespace != "apps" || pc.GenerateName != "shop-7d9f-" ||
		pc.Labels[profilingv1alpha1.LabelCapturePod] != "shop-7d9f" || pc.Labels[profilingv1alpha1.LabelCaptureNode] != "node-1" {
		t.Errorf("metadata %+v, want namespace apps, generateName shop-7d9f-, labels pod and node", pc.ObjectMeta)
	}
	if !equalSpec(pc.Spec, wantSpec) {
		t.Errorf("spec\n %+v\nwant\n %+v", pc.Spec, wantSpec)
	}
	if len(h.pin.pins) != 1 || h.pin.pins[0] != (pin{"apps", "shop-7d9f", crossedAt.Add(-DefaultWindow)}) {
		t.Errorf("pins %+v, want one of apps/shop-7d9f from %s", h.pin.pins, crossedAt.Add(-DefaultWindow))
	}
	if c := h.counter(t, "kprof_agent_threshold_captures_total", "resource", "cpu"); c != 1 {
		t.Errorf("captures_total{cpu} = %v, want 1", c)
	}
	if c := h.counter(t, "kprof_agent_threshold_crossings_total", "resource", "cpu"); c != 11 {
		t.Errorf("crossings_total{cpu} = %v, want 11 (every reading at or above)", c)
	}
	if c := h.counter(t, "kprof_agent_threshold_suppressed_total", "reason", SuppressedRecent); c != 10 {
		t.Errorf("suppressed_total{recent} = %v, want 10", c)
	}
}

func equalSpec(a, b profilingv1alpha1.ProfileCaptureSpec) bool {
	return a.Pod == b.Pod && a.Reason == b.Reason && *a.ProfilingConfig == *b.ProfilingConfig && a.Requester == b.Requester &&
		a.Trigger == b.Trigger && a.Threshold != nil && a.Threshold.Source == b.Threshold.Source &&
		a.Threshold.Resource == b.Threshold.Resource && a.Threshold.Container == b.Threshold.Container &&
		a.Threshold.CrossedAt.Equal(&b.Threshold.CrossedAt) && a.ProfileTypes == nil && a.CPUDurationSeconds == 0
}

// The operator's semantics, through threshold.Evaluate: basis, selected containers, memory,
// and which configs and pods the agent evaluates at all.
func TestSemanticsAreTheOperators(t *testing.T) {
	withTh := func(f func(*profilingv1alpha1.Thresholds)) *profilingv1alpha1.ProfilingConfig {
		th := cpuAt80()
		f(&th)
		return config("shop", th)
	}
	cases := []struct {
		name     string
		pc       *profilingv1alpha1.ProfilingConfig
		mainCtr  string // requests/limits: cpu request, cpu limit of container main
		cpuLimit string
		mutate   func(*harness)
		cores    float64 // main's usage
		sideCPU  float64 // sidecar's usage
		memBytes float64 // main's memory
		want     string  // reason of the one capture, "" for none
	}{
		{name: "request basis", pc: config("shop", cpuAt80()), mainCtr: "100m", cores: 0.08, want: "cpu 80% of request ≥ 80% (container main)"},
		{name: "just below the threshold is not a crossing", pc: config("shop", cpuAt80()), mainCtr: "100m", cores: 0.0799999},
		{name: "limit basis measures against the limit", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Basis = "Limit" }),
			mainCtr: "100m", cpuLimit: "200m", cores: 0.15},
		{name: "limit basis crosses at the limit's percentage", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Basis = "Limit" }),
			mainCtr: "100m", cpuLimit: "200m", cores: 0.17, want: "cpu 85% of limit ≥ 80% (container main)"},
		{name: "request basis falls back to the limit", pc: config("shop", cpuAt80()), cpuLimit: "200m", cores: 0.17,
			want: "cpu 85% of limit ≥ 80% (container main)"},
		{name: "unselected containers are not evaluated", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Containers = []string{"sidecar"} }),
			mainCtr: "100m", cores: 0.5, sideCPU: 0.01},
		{name: "a selected container crosses", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Containers = []string{"sidecar"} }),
			mainCtr: "100m", sideCPU: 0.09, want: "cpu 90% of request ≥ 80% (container sidecar)"},
		{name: "memory crosses", pc: config("shop", cpuAt80()), mainCtr: "100m", memBytes: 120 << 20,
			want: "memory 93% of request ≥ 90% (container main)"},
		{name: "source metricsServer is not the agent's", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Source = profilingv1alpha1.SourceMetricsServer }),
			mainCtr: "100m", cores: 0.5},
		{name: "source agent is", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Source = profilingv1alpha1.SourceAgent }),
			mainCtr: "100m", cores: 0.5, want: "cpu 500% of request ≥ 80% (container main)"},
		{name: "disabled thresholds are not evaluated", pc: withTh(func(th *profilingv1alpha1.Thresholds) { th.Enabled = new(bool) }),
			mainCtr: "100m", cores: 0.5},
		{name: "a config of another namespace does not select the pod", pc: func() *profilingv1alpha1.ProfilingConfig {
			pc := config("shop", cpuAt80())
			pc.Namespace = "other"
			return pc
		}(), mainCtr: "100m", cores: 0.5},
		{name: "a config of another namespace selecting apps does", pc: func() *profilingv1alpha1.ProfilingConfig {
			pc := config("shop", cpuAt80())
			pc.Namespace, pc.Spec.Selector.Namespace = "other", "apps"
			return pc
		}(), mainCtr: "100m", cores: 0.5, want: "cpu 500% of request ≥ 80% (container main)"},
		{name: "the label selector must match", pc: func() *profilingv1alpha1.ProfilingConfig {
			pc := config("shop", cpuAt80())
			pc.Spec.Selector.LabelSelector.MatchLabels["app"] = "cart"
			return pc
		}(), mainCtr: "100m", cores: 0.5},
		{name: "a pod not annotated is not evaluated", pc: config("shop", cpuAt80()), mainCtr: "100m", cores: 0.5,
			mutate: func(h *harness) { h.pods[uidA].Annotations = nil }},
		{name: "a pod not Ready is not evaluated", pc: config("shop", cpuAt80()), mainCtr: "100m", cores: 0.5,
			mutate: func(h *harness) { h.pods[uidA].Status.Conditions = nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", tc.mainCtr, "128Mi", tc.cpuLimit, ""), ctr("sidecar", "100m", "", "", ""))
			if tc.mutate != nil {
				tc.mutate(h)
			}
			h.api.set(tc.pc)
			for s := range 3 {
				h.observe(reading(float64(s),
					cpu(uidA, cidA, "main", tc.cores*float64(s)), mem(uidA, cidA, "main", tc.memBytes),
					cpu(uidA, cidS, "sidecar", tc.sideCPU*float64(s))))
			}
			got := h.api.captures()
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("captures %q, want none", got[0].Spec.Reason)
			case tc.want != "" && (len(got) != 1 || got[0].Spec.Reason != tc.want):
				t.Errorf("%d captures (%v), want one with reason %q", len(got), reasons(got), tc.want)
			}
		})
	}
}

func reasons(pcs []*profilingv1alpha1.ProfileCapture) []string {
	var out []string
	for _, pc := range pcs {
		out = append(out, pc.Spec.Reason)
	}
	return out
}

// A container without request or limit is reported once per change of the problems,
// and the pod's other containers are still evaluated.
func TestUncomputableContainersAreReportedOncePerChange(t *testing.T) {
	h := newHarness(t)
	h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "128Mi", "", ""), ctr("sidecar", "", "", "", ""))
	h.api.set(config("shop", cpuAt80()))
	for s := range 5 {
		h.observe(reading(float64(s), cpu(uidA, cidA, "main", 0.01*float64(s)), cpu(uidA, cidS, "sidecar", float64(s))))
	}
	if n := strings.Count(h.logs.String(), "cannot compute a usage percentage"); n != 1 {
		t.Errorf("%d reports, want 1:\n%s", n, h.logs.String())
	}
	if !strings.Contains(h.logs.String(), "container sidecar: no cpu request or limit") {
		t.Errorf("the report does not name the problem:\n%s", h.logs.String())
	}
	if g := h.counter(t, "kprof_agent_threshold_uncomputable_pods", "", ""); g != 1 {
		t.Errorf("uncomputable_pods = %v, want 1", g)
	}
	// A config change that leaves the problems as they are: not reported again.
	th := cpuAt80()
	th.MemoryThresholdPercent = 50
	pc := config("shop", th)
	pc.ResourceVersion = "2"
	h.api.set(pc)
	h.observe(reading(5, cpu(uidA, cidA, "main", 0.05), cpu(uidA, cidS, "sidecar", 5)))
	if c := h.counter(t, "kprof_agent_threshold_uncomputable_reports_total", "", ""); c != 1 {
		t.Errorf("uncomputable_reports_total = %v, want 1: the problems did not change", c)
	}
	// The sidecar gets a CPU request: only its memory is left uncomputable, reported.
	h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "128Mi", "", ""), ctr("sidecar", "100m", "", "", ""))
	h.observe(reading(6, cpu(uidA, cidA, "main", 0.06), cpu(uidA, cidS, "sidecar", 5)))
	if c := h.counter(t, "kprof_agent_threshold_uncomputable_reports_total", "", ""); c != 2 {
		t.Errorf("uncomputable_reports_total = %v, want 2: the problems changed", c)
	}
	if !strings.Contains(h.logs.String(), `problems="[container sidecar: no memory request or limit]"`) {
		t.Errorf("the second report does not name the remaining problem:\n%s", h.logs.String())
	}
	// The pod goes away: forgotten.
	delete(h.pods, uidA)
	h.observe(reading(7, cpu(uidA, cidA, "main", 0.07)))
	if g := h.counter(t, "kprof_agent_threshold_uncomputable_pods", "", ""); g != 0 {
		t.Errorf("uncomputable_pods = %v after the pod left, want 0", g)
	}
}

// Suppression (design §B): status.lastTriggers in its cooldown, this agent's own
// cooldown, and the backoff after a failed create.
func TestSuppression(t *testing.T) {
	t.Run("status.lastTriggers in the cooldown suppresses, and its end lets the next crossing through", func(t *testing.T) {
		h := newHarness(t)
		h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "", "", ""))
		pc := config("shop", cpuAt80())
		pc.Status.LastTriggers = []profilingv1alpha1.PodTrigger{{Pod: "shop-1", UID: uidA, Time: metav1.NewTime(t0.Add(-50 * time.Second)), Reason: "cpu 99% of request ≥ 80%"}}
		h.api.set(pc)
		var used float64
		h.burn(0, 10, 0.5, &used) // t0..t0+9: inside the cooldown (until t0+10)
		if got := h.api.captures(); len(got) != 0 {
			t.Fatalf("%d captures inside the cooldown", len(got))
		}
		if c := h.counter(t, "kprof_agent_threshold_suppressed_total", "reason", SuppressedCooldown); c != 9 {
			t.Errorf("suppressed_total{cooldown} = %v, want 9", c)
		}
		h.burn(10, 1, 0.5, &used)
		if got := h.api.captures(); len(got) != 1 {
			t.Fatalf("%d captures once the cooldown ended, want 1", len(got))
		}
	})
	t.Run("a flapping pod makes one capture per cooldown", func(t *testing.T) {
		h := newHarness(t)
		h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "", "", ""))
		h.api.set(config("shop", cpuAt80())) // cooldown 60 s
		var used float64
		for s := range 600 { // 10 minutes: above, below, above, ...
			cores := 0.01
			if s%2 == 1 {
				cores = 0.5
			}
			h.burn(s, 1, cores, &used)
		}
		got := h.api.captures()
		if len(got) != 10 {
			t.Fatalf("%d captures in 10 minutes of flapping with a 60 s cooldown, want 10", len(got))
		}
		for i := 1; i < len(got); i++ {
			if d := got[i].Spec.Threshold.CrossedAt.Sub(got[i-1].Spec.Threshold.CrossedAt.Time); d < time.Minute {
				t.Errorf("captures %d and %d %s apart, within the cooldown", i-1, i, d)
			}
		}
	})
	t.Run("a failed create backs off, then succeeds", func(t *testing.T) {
		h := newHarness(t)
		h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "", "", ""))
		h.api.set(config("shop", cpuAt80()))
		h.api.fail = apierrors.NewInternalError(errors.New("etcd is away"))
		var used float64
		h.burn(0, 2, 0.5, &used) // create fails at t0+1: backoff 5 s
		h.burn(2, 4, 0.5, &used) // t0+2..5: in the backoff
		if c := h.counter(t, "kprof_agent_threshold_suppressed_total", "reason", SuppressedBackoff); c != 4 {
			t.Errorf("suppressed_total{backoff} = %v, want 4", c)
		}
		h.burn(6, 1, 0.5, &used) // fails again at t0+6: backoff 10 s
		h.api.mu.Lock()
		h.api.fail = nil
		h.api.mu.Unlock()
		h.burn(7, 9, 0.5, &used) // t0+7..15: in the backoff
		if got := h.api.captures(); len(got) != 0 {
			t.Fatalf("%d captures inside the backoff", len(got))
		}
		h.burn(16, 1, 0.5, &used)
		if got := h.api.captures(); len(got) != 1 {
			t.Fatalf("%d captures after the backoff, want 1", len(got))
		}
		if c := h.counter(t, "kprof_agent_threshold_create_errors_total", "reason", "InternalError"); c != 2 {
			t.Errorf("create_errors_total{InternalError} = %v, want 2", c)
		}
	})
	t.Run("nothing is evaluated before the configs are listed", func(t *testing.T) {
		h := newHarness(t)
		h.pods[uidA] = runningPod("shop-1", uidA, ctr("main", "100m", "", "", ""))
		var used float64
		h.burn(0, 3, 0.5, &used)
		h.api.set(config("shop", cpuAt80()))
		h.burn(3, 1, 0.5, &used) // the counter was kept: a rate at once
		if got := h.api.captures(); len(got) != 1 || !got[0].Spec.Threshold.CrossedAt.Time.Equal(t0.Add(3*time.Second)) {
			t.Fatalf("captures %+v, want one at t0+3s", got)
		}
	})
}

// A Forbidden create is reported in one line naming the missing permission, and by the gauge.
func TestForbiddenIsReportedOnce(t *testing.T) {
	h := newHarness(t)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Group: "profiling.io", Resource: "profilecaptures"}, "",
		errors.New(`User "system:serviceaccount:kprof:agent" cannot create resource "profilecaptures"`))
	for range 3 {
		h.access.note(OpCreateCaptures, forbidden)
	}
	if n := strings.Count(h.logs.String(), "forbidden to create ProfileCaptures: the agent's RBAC lacks create on profilecaptures.profiling.io"); n != 1 {
		t.Errorf("%d lines naming the missing permission, want 1:\n%s", n, h.logs.String())
	}
	if g := h.counter(t, "kprof_agent_node_thresholds_forbidden", "operation", OpCreateCaptures); g != 1 {
		t.Errorf("forbidden{create} = %v, want 1", g)
	}
	if got := h.Forbidden(); len(got) != 1 || got[0] != OpCreateCaptures {
		t.Errorf("Forbidden() = %v", got)
	}
	h.access.note(OpCreateCaptures, nil)
	if g := h.counter(t, "kprof_agent_node_thresholds_forbidden", "operation", OpCreateCaptures); g != 0 || h.Forbidden() != nil {
		t.Errorf("forbidden{create} = %v, Forbidden() = %v after a success, want 0 and none", g, h.Forbidden())
	}
}
