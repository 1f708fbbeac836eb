package helm

import (
	"strings"
	"testing"
)

func TestHelmLint(t *testing.T) {
	for _, vs := range append(valueSets, everyOption) {
		t.Run("the chart lints cleanly with "+vs.name, func(t *testing.T) {
			args := append([]string{"lint", chartDir, "--strict", "--namespace", namespace, "--kube-version", "1.36.3"}, vs.args()...)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
			}
			if !strings.Contains(out, "0 chart(s) failed") {
				t.Fatalf("helm lint did not report success:\n%s", out)
			}
		})
	}
}

func TestHelmTemplateRendersTheExpectedObjects(t *testing.T) {
	always := [][2]string{
		{"ServiceAccount", "kprof-operator"},
		{"ClusterRole", "kprof-operator"}, {"ClusterRoleBinding", "kprof-operator"},
		{"Role", "kprof-operator"}, {"RoleBinding", "kprof-operator"},
		{"Deployment", "kprof-operator"}, {"Service", "kprof-operator-metrics"}, {"Service", "kprof-ui"},
		{"CustomResourceDefinition", "profilingconfigs.profiling.io"},
		{"CustomResourceDefinition", "profilecaptures.profiling.io"},
	}
	cases := []struct {
		vs      valueSet
		want    [][2]string
		notWant [][2]string
	}{
		{valueSets[0], always, [][2]string{
			{"DaemonSet", "kprof-agent"}, {"ClusterRole", "kprof-agent"}, {"ConfigMap", "kprof-agent-configs"},
			{"ProfilingConfig", "default"}, {"ClusterRole", "kprof-operator-portforward"},
		}},
		{valueSets[1], append(always, [][2]string{
			{"DaemonSet", "kprof-agent"}, {"ServiceAccount", "kprof-agent"}, {"ConfigMap", "kprof-agent-configs"},
			{"ClusterRole", "kprof-agent"}, {"ClusterRoleBinding", "kprof-agent"},
		}...), [][2]string{{"ProfilingConfig", "default"}}},
		{valueSets[2], append(always, [2]string{"ProfilingConfig", "shop"}), [][2]string{{"DaemonSet", "kprof-agent"}}},
		{everyOption, [][2]string{
			{"ClusterRole", "prof-operator-portforward"}, {"ClusterRoleBinding", "prof-operator-portforward"},
			{"PersistentVolumeClaim", "prof-operator-spool"}, {"ServiceMonitor", "prof-operator"},
			{"DaemonSet", "prof-agent"}, {"ProfilingConfig", "default"}, {"Service", "prof-ui"},
		}, [][2]string{
			{"CustomResourceDefinition", "profilingconfigs.profiling.io"}, {"CustomResourceDefinition", "profilecaptures.profiling.io"},
			{"ServiceAccount", "existing-sa"},
			{"ServiceAccount", "agent-sa"}, {"PersistentVolumeClaim", "prof-operator-profiles"},
		}},
	}
	for _, tc := range cases {
		t.Run("helm template with "+tc.vs.name+" renders what those values ask for", func(t *testing.T) {
			objs := render(t, tc.vs.args()...)
			for _, w := range tc.want {
				if !has(objs, w[0], w[1]) {
					t.Errorf("no %s %s among %v", w[0], w[1], names(objs))
				}
			}
			for _, w := range tc.notWant {
				if has(objs, w[0], w[1]) {
					t.Errorf("%s %s rendered, but these values do not ask for it", w[0], w[1])
				}
			}
			for _, o := range objs {
				if o.GetAPIVersion() == "" || o.GetKind() == "" || o.GetName() == "" {
					t.Errorf("an object without apiVersion, kind or name: %v", o.Object)
				}
			}
		})
	}
}

// schemaCase is a --set the chart's values.schema.json must refuse, and a part of the error.
type schemaCase struct {
	name string
	set  string
	want string
}

// assertSchemaRejects runs helm template with each case's --set and wants the schema's error.
func assertSchemaRejects(t *testing.T, cases []schemaCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name+" fails helm template with the schema's error", func(t *testing.T) {
			_, stderr, err := runHelm(t, templateArgs("--set", tc.set)...)
			if err == nil {
				t.Fatalf("helm template --set %s succeeded", tc.set)
			}
			if !strings.Contains(stderr, "values don't meet the specifications of the schema") || !strings.Contains(stderr, tc.want) {
				t.Fatalf("helm template --set %s: stderr\n%s\nwant the schema error %q", tc.set, stderr, tc.want)
			}
		})
	}
}

func TestValuesSchemaRejectsTypos(t *testing.T) {
	assertSchemaRejects(t, []schemaCase{
		{"a misspelt operator key", "operator.replica=2", "at '/operator': additional properties 'replica' not allowed"},
		{"a string for a boolean", "agent.enabled=yes", "at '/agent/enabled': got string, want boolean"},
		{"a misspelt key deep down", "agent.consumers.otlp.endpiont=x", "at '/agent/consumers/otlp': additional properties 'endpiont' not allowed"},
		{"a misspelt top-level key", "leaderElect=true", "additional properties 'leaderElect' not allowed"},
		{"a threshold above 100%", "defaultConfig.thresholds.cpuPercent=120", "at '/defaultConfig/thresholds/cpuPercent': maximum: got 120, want 100"},
		{"a schedule below the CRD's minimum", "defaultConfig.schedule.intervalSeconds=10", "at '/defaultConfig/schedule/intervalSeconds': minimum: got 10, want 30"},
		{"an unknown profile type", "defaultConfig.profileTypes={cpu,hepa}", "/defaultConfig/profileTypes/1"},
		{"a capability with its CAP_ prefix", "agent.extraCapabilities={CAP_SYS_ADMIN}", "/agent/extraCapabilities/0"},
		{"an unknown perf event in an agent config", "agent.configs.cpu-clock.spec.event=cpu-clocks", "/agent/configs/cpu-clock"},
		{"a misspelt retention key", "operator.profiles.retention.maxAgeSeconds=60", "at '/operator/profiles/retention': additional properties 'maxAgeSeconds' not allowed"},
		{"a retention age without a unit", "operator.profiles.retention.maxAge=7", "/operator/profiles/retention/maxAge"},
		{"a config's maxBytes below the CRD's minimum", "defaultConfig.localStorage.maxBytes=1000", "at '/defaultConfig/localStorage/maxBytes': minimum: got 1,000, want 1.048576×10⁰⁶"},
		{"a misspelt UI key", "ui.enable=true", "at '/ui': additional properties 'enable' not allowed"},
		{"a relative UI store", "ui.store=profiles", "/ui/store"},
		{"a UI S3 endpoint without a scheme", "ui.s3Endpoint=minio:9000", "/ui/s3Endpoint"},
		{"a misspelt key in the operator's security context", "operator.securityContext.readOnlyRootFileSystem=true", "additional properties 'readOnlyRootFileSystem' not allowed"},
	})
	t.Run("a typo fails helm lint too", func(t *testing.T) {
		out, stderr, err := runHelm(t, "lint", chartDir, "--kube-version", "1.36.3", "--set", "operator.replica=2")
		if err == nil || !strings.Contains(out+stderr, "additional properties 'replica' not allowed") {
			t.Fatalf("helm lint --set operator.replica=2: err %v, output\n%s%s", err, out, stderr)
		}
	})
}

func TestTemplateRefusesContradictoryValues(t *testing.T) {
	cases := []struct {
		name string
		sets []string
		want string
	}{
		{"S3 and local storage together", []string{"defaultConfig.enabled=true", "defaultConfig.s3.bucket=profiles", "defaultConfig.localStorage.path=x"},
			"defaultConfig: set s3.bucket or localStorage, not both"},
		{"S3 and a local storage retention together", []string{"defaultConfig.enabled=true", "defaultConfig.s3.bucket=profiles", "defaultConfig.localStorage.maxBytes=2097152"},
			"defaultConfig: set s3.bucket or localStorage, not both"},
		{"a KMS key without aws:kms", []string{"defaultConfig.enabled=true", "defaultConfig.s3.bucket=profiles", "defaultConfig.s3.kmsKeyID=k"},
			"defaultConfig.s3.kmsKeyID: needs defaultConfig.s3.sse aws:kms"},
		{"S3 settings without a bucket", []string{"defaultConfig.enabled=true", "defaultConfig.s3.region=eu-west-1"},
			"defaultConfig.s3: bucket is required"},
		{"a CPU profile as long as the schedule", []string{"defaultConfig.enabled=true", "defaultConfig.cpuProfileDurationSeconds=60", "defaultConfig.schedule.intervalSeconds=60"},
			"defaultConfig.cpuProfileDurationSeconds (60) must be at most defaultConfig.schedule.intervalSeconds - ceil(intervalSeconds/10) - 5 = 49"},
		{"a CPU profile one second over the bound at the minimum interval", []string{"defaultConfig.enabled=true", "defaultConfig.cpuProfileDurationSeconds=23", "defaultConfig.schedule.intervalSeconds=30"},
			"defaultConfig.cpuProfileDurationSeconds (23) must be at most defaultConfig.schedule.intervalSeconds - ceil(intervalSeconds/10) - 5 = 22"},
		{"Datadog through an Agent and agentless at once", []string{"agent.enabled=true", "agent.consumers.datadog.enabled=true", "agent.consumers.datadog.site=datadoghq.com", "agent.consumers.datadog.agentURL=http://x:8126"},
			"agent.consumers.datadog: set agentURL"},
		{"agentless Datadog without an API key", []string{"agent.enabled=true", "agent.consumers.datadog.enabled=true", "agent.consumers.datadog.site=datadoghq.com"},
			"needs agent.consumers.datadog.apiKeySecret.name"},
		{"OTLP without an endpoint", []string{"agent.enabled=true", "agent.consumers.otlp.enabled=true"},
			"agent.consumers.otlp.enabled needs agent.consumers.otlp.endpoint"},
		{"two replicas without leader election", []string{"operator.replicas=2", "leaderElection.enabled=false"},
			"operator.replicas > 1 needs leaderElection.enabled"},
		{"the UI on the metrics port", []string{"ui.port=8080"}, "ui.port (8080) is metrics.port too"},
		{"the UI on the health port", []string{"ui.port=8081"}, "ui.port (8081): the operator's health probes use 8081"},
		{"a UI S3 region for the profiles directory", []string{"ui.s3Region=eu-west-1"}, "ui.s3Endpoint, ui.s3Region: need an s3:// ui.store"},
		{"a ServiceMonitor without metrics", []string{"metrics.enabled=false", "metrics.serviceMonitor.enabled=true"},
			"metrics.serviceMonitor.enabled needs metrics.enabled"},
	}
	for _, tc := range cases {
		t.Run(tc.name+" fails naming the values", func(t *testing.T) {
			_, stderr, err := runHelm(t, templateArgs("--set", strings.Join(tc.sets, ","))...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Fatalf("helm template --set %s: err %v, stderr\n%s\nwant %q", strings.Join(tc.sets, ","), err, stderr, tc.want)
			}
		})
	}
}
