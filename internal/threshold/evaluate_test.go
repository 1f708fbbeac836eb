package threshold

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// res builds a ResourceList; an empty string leaves the resource out.
func res(cpu, mem string) corev1.ResourceList {
	l := corev1.ResourceList{}
	if cpu != "" {
		l[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		l[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return l
}

func ctr(name string, requests, limits corev1.ResourceList) corev1.Container {
	return corev1.Container{Name: name, Resources: corev1.ResourceRequirements{Requests: requests, Limits: limits}}
}

func podOf(name string, containers ...corev1.Container) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)},
		Spec:       corev1.PodSpec{Containers: containers},
	}
}

func use(name, cpu, mem string) ContainerUsage {
	u := ContainerUsage{Name: name}
	if cpu != "" {
		u.CPU = resource.MustParse(cpu)
	}
	if mem != "" {
		u.Memory = resource.MustParse(mem)
	}
	return u
}

func usageOf(containers ...ContainerUsage) PodUsage {
	return PodUsage{Namespace: "ns", Name: "p", Timestamp: t0, Window: 15 * time.Second, Containers: containers}
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestEvaluate(t *testing.T) {
	rule := Rule{CPUPercent: 80, MemoryPercent: 90, Cooldown: 5 * time.Minute}
	withRule := func(f func(*Rule)) Rule {
		r := rule
		f(&r)
		return r
	}
	sidecar := ctr("sidecar", nil, nil)
	always := corev1.ContainerRestartPolicyAlways
	nativeSidecar := ctr("proxy", res("100m", ""), nil)
	nativeSidecar.RestartPolicy = &always

	tests := []struct {
		name         string
		pod          *corev1.Pod
		usage        PodUsage
		rule         Rule
		want         *Crossing // nil: no crossing
		uncomputable []string
	}{
		{
			name:  "cpu at 93% of its request crosses an 80% threshold",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "930m", "100Mi")),
			rule:  rule,
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 93, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:  "cpu exactly at the threshold crosses because the comparison is at-or-above",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "800m", "")),
			rule:  rule,
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 80, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:  "cpu half a millicore below the threshold does not cross although MilliValue would round it up",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "799500000n", "")),
			rule:  rule,
		},
		{
			name:  "cpu one nanocore above the threshold crosses",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "800000001n", "")),
			rule:  rule,
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 80, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:  "cpu usage above the request reports a percentage over 100",
			pod:   podOf("p", ctr("app", res("200m", ""), res("1", ""))),
			usage: usageOf(use("app", "500m", "")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 250, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:  "memory at 95% of its request crosses a 90% threshold",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "10m", "1020054732")), // 0.95 GiB
			rule:  rule,
			want:  &Crossing{Resource: "memory", Container: "app", Percent: 94.999999, Threshold: 90, Basis: "request", PodContainers: 1},
		},
		{
			name:  "memory just below the threshold does not cross",
			pod:   podOf("p", ctr("app", res("1", "1000"), nil)),
			usage: usageOf(use("app", "", "899")),
			rule:  rule,
		},
		{
			name:  "the Request basis falls back to the limit when the container has no request",
			pod:   podOf("p", ctr("app", nil, res("2", ""))),
			usage: usageOf(use("app", "1800m", "")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 90, Threshold: 80, Basis: "limit", PodContainers: 1},
		},
		{
			name:  "a request of 0 counts as missing and falls back to the limit",
			pod:   podOf("p", ctr("app", res("0", ""), res("2", ""))),
			usage: usageOf(use("app", "1800m", "")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 90, Threshold: 80, Basis: "limit", PodContainers: 1},
		},
		{
			name:  "the Limit basis measures against the limit when both are set",
			pod:   podOf("p", ctr("app", res("500m", ""), res("2", ""))),
			usage: usageOf(use("app", "1", "")),
			rule:  withRule(func(r *Rule) { r.Basis = BasisLimit; r.MemoryPercent = 0 }),
		},
		{
			name:  "the Request basis measures the same pod against its request and crosses",
			pod:   podOf("p", ctr("app", res("500m", ""), res("2", ""))),
			usage: usageOf(use("app", "1", "")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 200, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:  "the Limit basis falls back to the request when the container has no limit",
			pod:   podOf("p", ctr("app", res("500m", ""), nil)),
			usage: usageOf(use("app", "450m", "")),
			rule:  withRule(func(r *Rule) { r.Basis = BasisLimit; r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "app", Percent: 90, Threshold: 80, Basis: "request", PodContainers: 1},
		},
		{
			name:         "a container with neither request nor limit is uncomputable and never divides by zero",
			pod:          podOf("p", ctr("app", nil, nil)),
			usage:        usageOf(use("app", "64", "64Gi")),
			rule:         rule,
			uncomputable: []string{"container app: no cpu request or limit", "container app: no memory request or limit"},
		},
		{
			name:         "the Limit basis names the limit first in the problem",
			pod:          podOf("p", ctr("app", nil, nil)),
			usage:        usageOf(use("app", "1", "")),
			rule:         withRule(func(r *Rule) { r.Basis = BasisLimit; r.MemoryPercent = 0 }),
			uncomputable: []string{"container app: no cpu limit or request"},
		},
		{
			name:         "a container with only a memory request is uncomputable for cpu but still crosses on memory",
			pod:          podOf("p", ctr("app", res("", "100Mi"), nil)),
			usage:        usageOf(use("app", "4", "100Mi")),
			rule:         rule,
			want:         &Crossing{Resource: "memory", Container: "app", Percent: 100, Threshold: 90, Basis: "request", PodContainers: 1},
			uncomputable: []string{"container app: no cpu request or limit"},
		},
		{
			name:         "in a pod of several containers the one that crosses triggers and an uncomputable one is reported",
			pod:          podOf("p", ctr("app", res("1", "1Gi"), nil), sidecar),
			usage:        usageOf(use("app", "950m", "10Mi"), use("sidecar", "5", "5Gi")),
			rule:         rule,
			want:         &Crossing{Resource: "cpu", Container: "app", Percent: 95, Threshold: 80, Basis: "request", PodContainers: 2},
			uncomputable: []string{"container sidecar: no cpu request or limit", "container sidecar: no memory request or limit"},
		},
		{
			name: "any container crossing makes the pod cross",
			pod:  podOf("p", ctr("app", res("1", "1Gi"), nil), ctr("worker", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "100m", "10Mi"),
				use("worker", "10m", "1000Mi")),
			rule: rule,
			want: &Crossing{Resource: "memory", Container: "worker", Percent: 97.65625, Threshold: 90, Basis: "request", PodContainers: 2},
		},
		{
			name: "the crossing furthest past its own threshold wins over a higher percentage",
			pod:  podOf("p", ctr("app", res("1", "1Gi"), nil), ctr("worker", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "900m", "10Mi"), // cpu 90% / 80% = 1.125
				use("worker", "10m", "1000Mi")), // memory 97.66% / 90% = 1.085
			rule: rule,
			want: &Crossing{Resource: "cpu", Container: "app", Percent: 90, Threshold: 80, Basis: "request", PodContainers: 2},
		},
		{
			name:  "only the selected containers are evaluated or reported",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil), ctr("worker", res("1", "1Gi"), nil), sidecar),
			usage: usageOf(use("app", "100m", "10Mi"), use("worker", "2", "2Gi"), use("sidecar", "1", "1Gi")),
			rule:  withRule(func(r *Rule) { r.Containers = []string{"app"} }),
		},
		{
			name:         "selected container names that the pod lacks are reported",
			pod:          podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage:        usageOf(use("app", "1", "1Gi")),
			rule:         withRule(func(r *Rule) { r.Containers = []string{"server", "api"} }),
			uncomputable: []string{"no container named server, api"},
		},
		{
			name:  "a threshold of 0 disables cpu, even for a container without a cpu request",
			pod:   podOf("p", ctr("app", res("", "1Gi"), nil)),
			usage: usageOf(use("app", "16", "10Mi")),
			rule:  withRule(func(r *Rule) { r.CPUPercent = 0 }),
		},
		{
			name:  "a threshold of 0 disables memory",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "10m", "4Gi")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
		},
		{
			name:  "a container in the usage but not in the spec, such as an ephemeral debug container, is ignored",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: usageOf(use("app", "10m", "10Mi"), use("debugger", "8", "8Gi")),
			rule:  rule,
		},
		{
			name:         "a spec container without usage is skipped but its missing request is still reported",
			pod:          podOf("p", ctr("app", res("1", "1Gi"), nil), sidecar),
			usage:        usageOf(use("app", "10m", "10Mi")),
			rule:         rule,
			uncomputable: []string{"container sidecar: no cpu request or limit", "container sidecar: no memory request or limit"},
		},
		{
			name:  "a pod without any usage sample does not cross",
			pod:   podOf("p", ctr("app", res("1", "1Gi"), nil)),
			usage: PodUsage{},
			rule:  rule,
		},
		{
			name: "a native sidecar (restartable init container) is evaluated",
			pod: func() *corev1.Pod {
				p := podOf("p", ctr("app", res("1", "1Gi"), nil))
				p.Spec.InitContainers = []corev1.Container{nativeSidecar, ctr("init", nil, nil)}
				return p
			}(),
			usage: usageOf(use("app", "10m", "10Mi"), use("proxy", "90m", "")),
			rule:  withRule(func(r *Rule) { r.MemoryPercent = 0 }),
			want:  &Crossing{Resource: "cpu", Container: "proxy", Percent: 90, Threshold: 80, Basis: "request", PodContainers: 2},
		},
		{
			name:  "quantities beyond int64 are compared exactly",
			pod:   podOf("p", ctr("app", res("", "8Ei"), nil)),
			usage: usageOf(use("app", "", "8Ei")),
			rule:  withRule(func(r *Rule) { r.CPUPercent = 0; r.MemoryPercent = 100 }),
			want:  &Crossing{Resource: "memory", Container: "app", Percent: 100, Threshold: 100, Basis: "request", PodContainers: 1},
		},
		{
			name:  "a nil pod does not cross",
			usage: usageOf(use("app", "8", "8Gi")),
			rule:  rule,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(tt.pod, tt.usage, tt.rule, time.Time{}, t0)
			if !reflect.DeepEqual(d.Crossing, tt.want) {
				t.Errorf("Crossing = %+v, want %+v", d.Crossing, tt.want)
			}
			if d.Trigger != (tt.want != nil) {
				t.Errorf("Trigger = %v, want %v", d.Trigger, tt.want != nil)
			}
			if d.InCooldown {
				t.Errorf("InCooldown without a previous trigger")
			}
			if !reflect.DeepEqual(d.Uncomputable, tt.uncomputable) {
				t.Errorf("Uncomputable = %q, want %q", d.Uncomputable, tt.uncomputable)
			}
		})
	}
}

func TestEvaluateCooldown(t *testing.T) {
	pod := podOf("p", ctr("app", res("1", "1Gi"), nil))
	hot := usageOf(use("app", "900m", ""))
	cold := usageOf(use("app", "100m", ""))
	rule := Rule{CPUPercent: 80, Cooldown: 5 * time.Minute}
	tests := []struct {
		name         string
		usage        PodUsage
		rule         Rule
		last         time.Time
		wantTrigger  bool
		wantCooldown bool
		wantUntil    time.Time
	}{
		{name: "a pod never triggered before triggers", usage: hot, rule: rule, wantTrigger: true},
		{name: "a pod triggered a minute ago is in its cooldown and does not trigger but still reports its crossing",
			usage: hot, rule: rule, last: t0.Add(-time.Minute), wantCooldown: true, wantUntil: t0.Add(4 * time.Minute)},
		{name: "a pod one nanosecond before the end of its cooldown does not trigger",
			usage: hot, rule: rule, last: t0.Add(-5*time.Minute + 1), wantCooldown: true, wantUntil: t0.Add(1)},
		{name: "a pod exactly at the end of its cooldown triggers",
			usage: hot, rule: rule, last: t0.Add(-5 * time.Minute), wantTrigger: true, wantUntil: t0},
		{name: "a pod whose last trigger is in the future (clock skew) stays in its cooldown",
			usage: hot, rule: rule, last: t0.Add(time.Minute), wantCooldown: true, wantUntil: t0.Add(6 * time.Minute)},
		{name: "a zero cooldown lets a pod triggered at the same instant trigger again",
			usage: hot, rule: Rule{CPUPercent: 80}, last: t0, wantTrigger: true, wantUntil: t0},
		{name: "a pod below its thresholds reports its cooldown without a crossing",
			usage: cold, rule: rule, last: t0.Add(-time.Minute), wantCooldown: true, wantUntil: t0.Add(4 * time.Minute)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Evaluate(pod, tt.usage, tt.rule, tt.last, t0)
			if d.Trigger != tt.wantTrigger || d.InCooldown != tt.wantCooldown || !d.CooldownUntil.Equal(tt.wantUntil) {
				t.Errorf("Trigger, InCooldown, CooldownUntil = %v, %v, %v; want %v, %v, %v",
					d.Trigger, d.InCooldown, d.CooldownUntil, tt.wantTrigger, tt.wantCooldown, tt.wantUntil)
			}
			if wantCrossing := tt.usage.Containers[0].CPU.Cmp(resource.MustParse("800m")) >= 0; (d.Crossing != nil) != wantCrossing {
				t.Errorf("Crossing = %+v, want a crossing: %v", d.Crossing, wantCrossing)
			}
		})
	}
}

func TestEvaluateDoesNotModifyThePodOrTheUsage(t *testing.T) {
	pod := podOf("p", ctr("app", res("1500m", "8Ei"), res("2", "8Ei")))
	u := usageOf(use("app", "1400m", "8Ei"))
	podBefore, usageBefore := pod.DeepCopy(), u.Containers[0]
	usageBefore.CPU, usageBefore.Memory = u.Containers[0].CPU.DeepCopy(), u.Containers[0].Memory.DeepCopy()

	for range 3 {
		Evaluate(pod, u, Rule{CPUPercent: 80, MemoryPercent: 90}, time.Time{}, t0)
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		got, want := pod.Spec.Containers[0].Resources.Requests[name], podBefore.Spec.Containers[0].Resources.Requests[name]
		if got.Cmp(want) != 0 {
			t.Errorf("request %s changed from %s to %s", name, want.String(), got.String())
		}
	}
	if u.Containers[0].CPU.Cmp(usageBefore.CPU) != 0 || u.Containers[0].Memory.Cmp(usageBefore.Memory) != 0 {
		t.Errorf("usage changed from %+v to %+v", usageBefore, u.Containers[0])
	}
}

func TestCrossingReason(t *testing.T) {
	tests := []struct {
		name string
		c    Crossing
		want string
	}{
		{"a single-container pod's reason does not name the container",
			Crossing{Resource: "cpu", Container: "app", Percent: 93, Threshold: 80, Basis: "request", PodContainers: 1},
			"cpu 93% of request ≥ 80%"},
		{"a pod of several containers names the one that crossed",
			Crossing{Resource: "cpu", Container: "app", Percent: 93, Threshold: 80, Basis: "request", PodContainers: 2},
			"cpu 93% of request ≥ 80% (container app)"},
		{"the percentage is rounded down, never up past what was measured",
			Crossing{Resource: "memory", Container: "app", Percent: 94.999999, Threshold: 90, Basis: "limit", PodContainers: 1},
			"memory 94% of limit ≥ 90%"},
		{"a usage exactly at the threshold shows the threshold",
			Crossing{Resource: "cpu", Percent: 80, Threshold: 80, Basis: "request"},
			"cpu 80% of request ≥ 80%"},
		{"a usage over 100% is shown as measured",
			Crossing{Resource: "cpu", Percent: 250.5, Threshold: 80, Basis: "request"},
			"cpu 250% of request ≥ 80%"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Reason(); got != tt.want {
				t.Errorf("Reason() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRuleValidate(t *testing.T) {
	tests := []struct {
		name    string
		rule    Rule
		wantErr string // substring; "" means valid
	}{
		{"a rule with both thresholds is valid", Rule{CPUPercent: 80, MemoryPercent: 90, Cooldown: time.Minute}, ""},
		{"a rule with only a memory threshold is valid", Rule{MemoryPercent: 90, Basis: BasisLimit}, ""},
		{"a negative cpu threshold names CPUPercent", Rule{CPUPercent: -1, MemoryPercent: 90}, "CPUPercent"},
		{"a negative memory threshold names MemoryPercent", Rule{CPUPercent: 80, MemoryPercent: -5}, "MemoryPercent"},
		{"a rule with both thresholds 0 can never trigger", Rule{}, "both 0"},
		{"an unknown basis names Basis", Rule{CPUPercent: 80, Basis: "request"}, `Basis "request"`},
		{"a negative cooldown names Cooldown", Rule{CPUPercent: 80, Cooldown: -time.Second}, "Cooldown"},
		{"an empty container name names Containers", Rule{CPUPercent: 80, Containers: []string{"app", ""}}, "Containers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkErr(t, tt.rule.Validate(), tt.wantErr)
		})
	}
}

func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Errorf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("error %q does not contain %q", err, want)
	}
}
