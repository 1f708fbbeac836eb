package helm

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// The pod conventions users expect of a chart (podAnnotations, podLabels, extraEnv, extraVolumes,
// extraVolumeMounts, priorityClassName, the top-level resources), for the operator and the agent.
func TestPodConventions(t *testing.T) {
	t.Run("the operator's pod carries the values of default-config-s3.yaml, top-level ones merged under the operator's", func(t *testing.T) {
		d := convert[appsv1.Deployment](t, find(t, render(t, valueSets[2].args()...), "Deployment", "kprof-operator"))
		tpl := d.Spec.Template
		checkPodMeta(t, tpl, map[string]string{"team/owner": "profiling", "prometheus.io/scrape": "false"},
			map[string]string{"cost-center": "42", "tier": "platform", "app.kubernetes.io/component": "operator"})
		if !labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(tpl.Labels)) {
			t.Errorf("the selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, tpl.Labels)
		}
		if tpl.Spec.PriorityClassName != "system-cluster-critical" {
			t.Errorf("priorityClassName %q, want system-cluster-critical", tpl.Spec.PriorityClassName)
		}
		c := container(t, tpl.Spec, "operator")
		checkExtras(t, tpl.Spec, c, []string{"HTTPS_PROXY", "AWS_STS_REGIONAL_ENDPOINTS"})
		if envVar(c, "POD_NAMESPACE") == nil {
			t.Error("extraEnv replaced the chart's POD_NAMESPACE instead of adding to it")
		}
		// The top-level resources (the seed design's name) win over operator.resources.
		if got := c.Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("2Gi")) != 0 {
			t.Errorf("memory limit %s, want the top-level resources' 2Gi", got.String())
		}
		if got := c.Resources.Requests[corev1.ResourceCPU]; got.Cmp(resource.MustParse("200m")) != 0 {
			t.Errorf("cpu request %s, want the top-level resources' 200m", got.String())
		}
	})

	t.Run("the agent's pod carries the values of agent-consumers.yaml, and podLabels cannot take the chart's labels", func(t *testing.T) {
		ds := convert[appsv1.DaemonSet](t, find(t, render(t, valueSets[1].args()...), "DaemonSet", "kprof-agent"))
		tpl := ds.Spec.Template
		checkPodMeta(t, tpl, map[string]string{"team/owner": "profiling"},
			map[string]string{"cost-center": "42", "app.kubernetes.io/component": "agent"})
		if !labels.SelectorFromSet(ds.Spec.Selector.MatchLabels).Matches(labels.Set(tpl.Labels)) {
			t.Errorf("the selector %v does not select the pod labels %v", ds.Spec.Selector.MatchLabels, tpl.Labels)
		}
		c := container(t, tpl.Spec, "agent")
		checkExtras(t, tpl.Spec, c, []string{"HTTPS_PROXY", "TEAM"})
		if envVar(c, "NODE_NAME") == nil {
			t.Error("extraEnv replaced the chart's NODE_NAME instead of adding to it")
		}
	})

	t.Run("without the values nothing of them is rendered", func(t *testing.T) {
		objs := render(t, "--set", "agent.enabled=true")
		op := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator")).Spec.Template
		ag := convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "kprof-agent")).Spec.Template
		for what, tpl := range map[string]corev1.PodTemplateSpec{"operator": op, "agent": ag} {
			if len(tpl.Annotations) != 0 || tpl.Spec.PriorityClassName != "" {
				t.Errorf("%s: annotations %v, priorityClassName %q by default", what, tpl.Annotations, tpl.Spec.PriorityClassName)
			}
		}
		if got := container(t, op.Spec, "operator").Resources.Limits[corev1.ResourceMemory]; got.Cmp(resource.MustParse("1Gi")) != 0 {
			t.Errorf("operator memory limit %s, want operator.resources' 1Gi", got.String())
		}
	})
}

func checkPodMeta(t *testing.T, tpl corev1.PodTemplateSpec, annotations, wantLabels map[string]string) {
	t.Helper()
	for k, v := range annotations {
		if tpl.Annotations[k] != v {
			t.Errorf("pod annotation %s = %q, want %q (all: %v)", k, tpl.Annotations[k], v, tpl.Annotations)
		}
	}
	for k, v := range wantLabels {
		if tpl.Labels[k] != v {
			t.Errorf("pod label %s = %q, want %q (all: %v)", k, tpl.Labels[k], v, tpl.Labels)
		}
	}
}

// checkExtras checks that the extraEnv names, the "ca" extraVolume and its extraVolumeMount are there.
func checkExtras(t *testing.T, pod corev1.PodSpec, c corev1.Container, env []string) {
	t.Helper()
	for _, name := range env {
		if envVar(c, name) == nil {
			t.Errorf("no env %s among %+v", name, c.Env)
		}
	}
	if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
		return v.Name == "ca" && v.ConfigMap != nil && v.ConfigMap.Name == "corporate-ca"
	}) {
		t.Errorf("no extra volume ca (ConfigMap corporate-ca) among %+v", pod.Volumes)
	}
	if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.Name == "ca" && m.MountPath == "/etc/ssl/certs/corp" && m.ReadOnly
	}) {
		t.Errorf("no extra mount of ca at /etc/ssl/certs/corp among %+v", c.VolumeMounts)
	}
}

func TestImageDigest(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		name            string
		set             string
		operator, agent string
	}{
		{"without a digest the tag is the appVersion", "",
			"ghcr.io/kprof/kprof:0.1.0", "ghcr.io/kprof/kprof:0.1.0"},
		{"image.digest replaces the tag of both", "image.tag=v1,image.digest=" + digest,
			"ghcr.io/kprof/kprof@" + digest, "ghcr.io/kprof/kprof@" + digest},
		{"an agent tag of its own keeps the agent off image.digest", "image.digest=" + digest + ",agent.image.tag=v2",
			"ghcr.io/kprof/kprof@" + digest, "ghcr.io/kprof/kprof:v2"},
		{"agent.image.digest applies to the agent only", "agent.image.repository=mirror.example.com/kprof,agent.image.digest=" + digest,
			"ghcr.io/kprof/kprof:0.1.0", "mirror.example.com/kprof@" + digest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--set", "agent.enabled=true"}
			if tc.set != "" {
				args = append(args, "--set", tc.set)
			}
			objs := render(t, args...)
			op := container(t, convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator")).Spec.Template.Spec, "operator")
			ag := container(t, convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "kprof-agent")).Spec.Template.Spec, "agent")
			test := find(t, objs, "Pod", "kprof-operator-test-health")
			probe := convert[corev1.Pod](t, test).Spec.Containers[0]
			if op.Image != tc.operator || probe.Image != tc.operator {
				t.Errorf("operator image %s, test pod image %s, want %s", op.Image, probe.Image, tc.operator)
			}
			if ag.Image != tc.agent {
				t.Errorf("agent image %s, want %s", ag.Image, tc.agent)
			}
		})
	}
}

func TestOperatorPodDisruptionBudget(t *testing.T) {
	t.Run("one replica gets none: a budget over a single pod would block every drain of its node", func(t *testing.T) {
		if objs := render(t); has(objs, "PodDisruptionBudget", "kprof-operator") {
			t.Error("a PodDisruptionBudget with replicas 1")
		}
	})
	t.Run("two replicas get one keeping one available, selecting the operator's pods", func(t *testing.T) {
		objs := render(t, "--set", "operator.replicas=2")
		pdb := convert[policyv1.PodDisruptionBudget](t, find(t, objs, "PodDisruptionBudget", "kprof-operator"))
		if pdb.Spec.MinAvailable == nil || *pdb.Spec.MinAvailable != intstr.FromInt32(1) || pdb.Spec.MaxUnavailable != nil {
			t.Errorf("minAvailable %v, maxUnavailable %v; want minAvailable 1 only", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
		}
		d := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator"))
		if !labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(labels.Set(d.Spec.Template.Labels)) {
			t.Errorf("the budget's selector %v does not select the operator's pods %v", pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels)
		}
	})
	t.Run("maxUnavailable is used instead of minAvailable when set", func(t *testing.T) {
		pdb := convert[policyv1.PodDisruptionBudget](t, find(t, render(t, everyOption.args()...), "PodDisruptionBudget", "prof-operator"))
		if pdb.Spec.MaxUnavailable == nil || *pdb.Spec.MaxUnavailable != intstr.FromString("50%") || pdb.Spec.MinAvailable != nil {
			t.Errorf("minAvailable %v, maxUnavailable %v; want maxUnavailable 50%% only", pdb.Spec.MinAvailable, pdb.Spec.MaxUnavailable)
		}
	})
	t.Run("podDisruptionBudget.enabled=false leaves it out", func(t *testing.T) {
		if has(render(t, "--set", "operator.replicas=3,operator.podDisruptionBudget.enabled=false"), "PodDisruptionBudget", "kprof-operator") {
			t.Error("rendered although disabled")
		}
	})
}

func TestAgentMetricsScraping(t *testing.T) {
	t.Run("off by default: no PodMonitor, ServiceMonitor or agent metrics Service, so no monitoring.coreos.com CRD is needed", func(t *testing.T) {
		for _, o := range render(t, "--set", "agent.enabled=true") {
			if strings.HasPrefix(o.GetAPIVersion(), "monitoring.coreos.com/") || o.GetName() == "kprof-agent-metrics" {
				t.Errorf("%s %s (%s) rendered by default", o.GetKind(), o.GetName(), o.GetAPIVersion())
			}
		}
	})
	t.Run("the PodMonitor and the ServiceMonitor scrape the agent pods' metrics port", func(t *testing.T) {
		objs := render(t, everyOption.args()...)
		ds := convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "prof-agent"))
		podLabels := labels.Set(ds.Spec.Template.Labels)
		metricsPort := port(container(t, ds.Spec.Template.Spec, "agent"), "metrics")
		if metricsPort == 0 {
			t.Fatal("the agent container has no port named metrics")
		}

		pm := find(t, objs, "PodMonitor", "prof-agent")
		checkMonitorSelects(t, pm, podLabels)
		eps, _, _ := unstructured.NestedSlice(pm.Object, "spec", "podMetricsEndpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "15s" {
			t.Errorf("PodMonitor endpoints %v, want port metrics every 15s", eps)
		}
		if pm.GetLabels()["release"] != "prometheus" {
			t.Errorf("PodMonitor labels %v lack the extra release: prometheus", pm.GetLabels())
		}

		svc := convert[corev1.Service](t, find(t, objs, "Service", "prof-agent-metrics"))
		if svc.Spec.ClusterIP != corev1.ClusterIPNone {
			t.Errorf("the agent metrics Service has clusterIP %q, want None (each pod scraped)", svc.Spec.ClusterIP)
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) {
			t.Errorf("the Service's selector %v does not select the agent pods %v", svc.Spec.Selector, podLabels)
		}
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "metrics" || svc.Spec.Ports[0].TargetPort != intstr.FromString("metrics") {
			t.Errorf("Service ports %+v, want metrics → the container's metrics port", svc.Spec.Ports)
		}
		sm := find(t, objs, "ServiceMonitor", "prof-agent")
		checkMonitorSelects(t, sm, labels.Set(svc.Labels))
		eps, _, _ = unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		if len(eps) != 1 || eps[0].(map[string]any)["port"] != "metrics" || eps[0].(map[string]any)["interval"] != "1m" {
			t.Errorf("ServiceMonitor endpoints %v, want port metrics every 1m", eps)
		}
		// The operator's ServiceMonitor must not pick up the agent's Service, nor the reverse.
		opSM := find(t, objs, "ServiceMonitor", "prof-operator")
		sel, _, _ := unstructured.NestedStringMap(opSM.Object, "spec", "selector", "matchLabels")
		if labels.SelectorFromSet(sel).Matches(labels.Set(svc.Labels)) {
			t.Errorf("the operator's ServiceMonitor %v selects the agent's metrics Service %v", sel, svc.Labels)
		}
	})
}

func checkMonitorSelects(t *testing.T, o *unstructured.Unstructured, target labels.Set) {
	t.Helper()
	sel, _, err := unstructured.NestedStringMap(o.Object, "spec", "selector", "matchLabels")
	if err != nil || len(sel) == 0 {
		t.Fatalf("%s %s has no spec.selector.matchLabels: %v", o.GetKind(), o.GetName(), err)
	}
	if !labels.SelectorFromSet(sel).Matches(target) {
		t.Errorf("%s %s selects %v, which does not match %v", o.GetKind(), o.GetName(), sel, target)
	}
}

// TestHelmTestPod: `helm test` runs a pod that GETs the operator's /readyz through a Service that
// selects the operator's pods and targets its health port.
func TestHelmTestPod(t *testing.T) {
	for _, vs := range append(valueSets, everyOption) {
		t.Run("with "+vs.name+" the test pod probes the operator's readiness through its health Service", func(t *testing.T) {
			objs := render(t, vs.args()...)
			var dep *appsv1.Deployment
			var test *corev1.Pod
			for _, o := range objs {
				switch o.GetKind() {
				case "Deployment":
					dep = convert[appsv1.Deployment](t, o)
				case "Pod":
					test = convert[corev1.Pod](t, o)
				}
			}
			if dep == nil || test == nil {
				t.Fatalf("want the operator Deployment and a test Pod among %v", names(objs))
			}
			if test.Annotations["helm.sh/hook"] != "test" {
				t.Errorf("test pod annotations %v, want helm.sh/hook: test", test.Annotations)
			}
			if test.Spec.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy %q, want Never (a test pod runs once)", test.Spec.RestartPolicy)
			}
			if dep.Spec.Selector != nil && labels.SelectorFromSet(dep.Spec.Selector.MatchLabels).Matches(labels.Set(test.Labels)) {
				t.Errorf("the operator's selector %v matches the test pod's labels %v", dep.Spec.Selector.MatchLabels, test.Labels)
			}
			c := test.Spec.Containers[0]
			if len(c.Args) < 2 || c.Args[0] != "probe" {
				t.Fatalf("test pod args %q, want kprof probe URL", c.Args)
			}
			u, err := url.Parse(c.Args[len(c.Args)-1])
			if err != nil {
				t.Fatalf("test pod URL: %v", err)
			}
			host := strings.Split(u.Hostname(), ".")
			if len(host) != 3 || host[1] != namespace || host[2] != "svc" || u.Path != "/readyz" {
				t.Fatalf("test pod URL %s, want http://SERVICE.%s.svc:PORT/readyz", u, namespace)
			}
			svc := convert[corev1.Service](t, find(t, objs, "Service", host[0]))
			if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
				t.Errorf("Service %s selects %v, not the operator's pods %v", svc.Name, svc.Spec.Selector, dep.Spec.Template.Labels)
			}
			op := container(t, dep.Spec.Template.Spec, "operator")
			var target string
			for _, p := range svc.Spec.Ports {
				if strconv.Itoa(int(p.Port)) == u.Port() {
					target = p.TargetPort.String()
				}
			}
			if target == "" || port(op, target) == 0 || op.ReadinessProbe == nil || op.ReadinessProbe.HTTPGet.Port.String() != target ||
				op.ReadinessProbe.HTTPGet.Path != u.Path {
				t.Errorf("Service port %s → %q, want the operator's readiness probe port (probe %+v)", u.Port(), target, op.ReadinessProbe)
			}
			sc := c.SecurityContext
			if sc == nil || !deref(sc.RunAsNonRoot) || !deref(sc.ReadOnlyRootFilesystem) || deref(sc.AllowPrivilegeEscalation) {
				t.Errorf("test container security context %+v, want the operator's hardening", sc)
			}
		})
	}
}

func TestValuesSchemaCoversTheConventions(t *testing.T) {
	assertSchemaRejects(t, []schemaCase{
		{"a misspelt PodDisruptionBudget key", "operator.podDisruptionBudget.minAvaliable=1", "additional properties 'minAvaliable' not allowed"},
		{"a misspelt agent monitor key", "agent.metrics.podMonitor.enable=true", "additional properties 'enable' not allowed"},
		{"a digest that is not algorithm:hex", "image.digest=latest", "/image/digest"},
		{"an agent digest that is not algorithm:hex", "agent.image.digest=sha256:xyz", "/agent/image/digest"},
		{"an extraEnv entry with a misspelt key", "operator.extraEnv[0].name=A,operator.extraEnv[0].valeu=b", "additional properties 'valeu' not allowed"},
		{"an extraEnv entry with both value and valueFrom", "agent.extraEnv[0].name=A,agent.extraEnv[0].value=b,agent.extraEnv[0].valueFrom.fieldRef.fieldPath=x", "/agent/extraEnv/0"},
		{"an extraVolumes entry with a misspelt source", "operator.extraVolumes[0].name=ca,operator.extraVolumes[0].configmap.name=x", "additional properties 'configmap' not allowed"},
		{"an extraVolumes entry without a source", "agent.extraVolumes[0].name=ca", "/agent/extraVolumes/0"},
		{"an extraVolumeMounts entry without a mountPath", "operator.extraVolumeMounts[0].name=ca", "missing property 'mountPath'"},
		{"a relative mountPath", "agent.extraVolumeMounts[0].name=ca,agent.extraVolumeMounts[0].mountPath=etc", "/agent/extraVolumeMounts/0/mountPath"},
		{"a podLabels value that is no label value", "podLabels.team=a b", "/podLabels/team"},
		{"a percentage without %", "operator.podDisruptionBudget.minAvailable=half", "/operator/podDisruptionBudget/minAvailable"},
		{"a misspelt top-level resources key", "resources.limit.memory=1Gi", "additional properties 'limit' not allowed"},
	})
	for _, kind := range []string{"podMonitor", "serviceMonitor"} {
		t.Run("agent.metrics."+kind+" without the agent fails naming both values", func(t *testing.T) {
			_, stderr, err := runHelm(t, templateArgs("--set", "agent.metrics."+kind+".enabled=true")...)
			want := "agent.metrics." + kind + ".enabled needs agent.enabled"
			if err == nil || !strings.Contains(stderr, want) {
				t.Fatalf("err %v, stderr\n%s\nwant %q", err, stderr, want)
			}
		})
	}
}

// TestOperatorResourcesMatchKustomize: the chart and config/manager give the operator the same
// requests and limits, so neither install path runs out of memory where the other does not.
func TestOperatorResourcesMatchKustomize(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "manager", "manager.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kustomize *appsv1.Deployment
	objs, err := decodeObjects(string(raw))
	if err != nil {
		t.Fatalf("config/manager/manager.yaml: %v", err)
	}
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			kustomize = convert[appsv1.Deployment](t, o)
		}
	}
	if kustomize == nil {
		t.Fatal("no Deployment in config/manager/manager.yaml")
	}
	want := container(t, kustomize.Spec.Template.Spec, "operator").Resources
	chart := convert[appsv1.Deployment](t, find(t, render(t), "Deployment", "kprof-operator"))
	got := container(t, chart.Spec.Template.Spec, "operator").Resources
	a, _ := yaml.Marshal(got)
	b, _ := yaml.Marshal(want)
	if string(a) != string(b) {
		t.Errorf("the chart's operator resources\n%s\ndiffer from config/manager/manager.yaml's\n%s", a, b)
	}
}
