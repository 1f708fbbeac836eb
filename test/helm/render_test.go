package helm

import (
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/kprof/kprof/internal/agent/collection"
)

func TestOperatorDeploymentIsHardened(t *testing.T) {
	d := convert[appsv1.Deployment](t, find(t, render(t), "Deployment", "kprof-operator"))
	pod := d.Spec.Template.Spec
	psc := pod.SecurityContext
	if psc == nil || !deref(psc.RunAsNonRoot) || deref(psc.RunAsUser) != 65532 || psc.SeccompProfile == nil ||
		psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v, want runAsNonRoot, runAsUser 65532, seccomp RuntimeDefault", psc)
	}
	c := container(t, pod, "operator")
	sc := c.SecurityContext
	switch {
	case sc == nil:
		t.Fatal("the operator container has no security context")
	case !deref(sc.RunAsNonRoot) || deref(sc.RunAsUser) != 65532:
		t.Errorf("container runs as %v (runAsNonRoot %v), want non-root 65532", sc.RunAsUser, sc.RunAsNonRoot)
	case !deref(sc.ReadOnlyRootFilesystem):
		t.Error("the root file system is writable")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation is allowed")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v, want drop ALL and nothing added", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("seccomp %+v, want RuntimeDefault", sc.SeccompProfile)
	}
	if env := envVar(c, "POD_NAMESPACE"); env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil ||
		env.ValueFrom.FieldRef.FieldPath != "metadata.namespace" {
		t.Errorf("POD_NAMESPACE is %+v, want the downward API's metadata.namespace", env)
	}
	checkProbe(t, "liveness", c.LivenessProbe, "/healthz", "health")
	checkProbe(t, "readiness", c.ReadinessProbe, "/readyz", "health")
	if p := port(c, "health"); p != 8081 {
		t.Errorf("health port %d, want 8081", p)
	}
	for _, dir := range []string{"/var/lib/kprof/spool", "/var/lib/kprof/profiles", "/tmp"} {
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == dir && !m.ReadOnly }) {
			t.Errorf("no writable volume at %s, which a read-only root file system needs", dir)
		}
	}
	wantArgs := []string{"operator", "--metrics-bind-address=:8080", "--health-probe-bind-address=:8081", "--leader-elect",
		"--profiles-dir=/var/lib/kprof/profiles", "--profiles-max-age=168h", "--profiles-max-bytes=3221225472",
		"--spool-dir=/var/lib/kprof/spool", "--spool-max-bytes=1073741824",
		"--spool-max-age=24h", "--ui-listen=:8082",
		"--agent-selector=app.kubernetes.io/name=kprof,app.kubernetes.io/instance=kprof,app.kubernetes.io/component=agent",
		"--agent-recorder-port=9092", "--agent-token-secret=kprof-recorder-token", "--recorder-window=30s", "--log-level=info"}
	if !slices.Equal(c.Args, wantArgs) {
		t.Errorf("args\n%q, want\n%q", c.Args, wantArgs)
	}
}

func TestAgentDaemonSet(t *testing.T) {
	t.Run("runs as root with BPF, PERFMON, SYS_PTRACE and SYSLOG only, host PIDs and the configs read-only", func(t *testing.T) {
		ds := convert[appsv1.DaemonSet](t, find(t, render(t, valueSets[1].args()...), "DaemonSet", "kprof-agent"))
		pod := ds.Spec.Template.Spec
		if !pod.HostPID {
			t.Error("hostPID is off: the agent would see only its own processes")
		}
		if pod.HostNetwork || pod.HostIPC {
			t.Error("the agent shares the host's network or IPC namespace, which it does not need")
		}
		if pod.PriorityClassName != "system-node-critical" {
			t.Errorf("priorityClassName %q", pod.PriorityClassName)
		}
		if !slices.Equal(pod.Tolerations, []corev1.Toleration{{Operator: corev1.TolerationOpExists}}) {
			t.Errorf("tolerations %+v, want to tolerate every taint", pod.Tolerations)
		}
		c := container(t, pod, "agent")
		sc := c.SecurityContext
		if sc == nil || sc.Capabilities == nil {
			t.Fatal("the agent container has no capabilities set")
		}
		if deref(sc.RunAsUser) != 0 || deref(sc.Privileged) || deref(sc.AllowPrivilegeEscalation) || !deref(sc.ReadOnlyRootFilesystem) {
			t.Errorf("security context %+v: want root, not privileged, no escalation, read-only root", sc)
		}
		if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
			t.Errorf("drop %v, want ALL", sc.Capabilities.Drop)
		}
		if want := []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE", "SYSLOG"}; !slices.Equal(sc.Capabilities.Add, want) {
			t.Errorf("add %v, want %v", sc.Capabilities.Add, want)
		}
		if sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			t.Errorf("seccomp %+v, want RuntimeDefault", sc.SeccompProfile)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.MountPath == "/etc/kprof/agent" && m.ReadOnly && m.Name == "configs"
		}) {
			t.Errorf("no read-only configs volume at /etc/kprof/agent: %+v", c.VolumeMounts)
		}
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "configs" && v.ConfigMap != nil && v.ConfigMap.Name == "kprof-agent-configs"
		}) {
			t.Error("the configs volume is not the kprof-agent-configs ConfigMap")
		}
		if env := envVar(c, "NODE_NAME"); env == nil || env.ValueFrom == nil || env.ValueFrom.FieldRef == nil || env.ValueFrom.FieldRef.FieldPath != "spec.nodeName" {
			t.Errorf("NODE_NAME is %+v, want the downward API's spec.nodeName", env)
		}
		checkProbe(t, "liveness", c.LivenessProbe, "/healthz", "health")
		checkProbe(t, "readiness", c.ReadinessProbe, "/healthz", "health")
		if p := port(c, "health"); p != 9091 {
			t.Errorf("health port %d, want 9091", p)
		}
		for _, want := range []string{
			"--config-dir=/etc/kprof/agent", "--enable-profiling-perfdata", "--profiling-perfdata-path=/var/lib/kprof/perfdata",
			"--enable-profiling-pprof", "--profiling-pprof-path=/var/lib/kprof/pprof",
			"--enable-profiling-datadog", "--datadog-site=datadoghq.eu", "--datadog-api-key-file=/etc/kprof/datadog/api-key", "--datadog-env=prod",
			"--enable-profiling-otlp", "--otlp-endpoint=otel-collector.observability:4317", "--otlp-insecure",
			"--otlp-header=authorization=Bearer abc", "--otlp-header=x-scope-orgid=tenant-1",
			"--otlp-metrics-endpoint=otel-collector.observability:4317",
			"--cgroup-root=/host/sys/fs/cgroup",
		} {
			if !slices.Contains(c.Args, want) {
				t.Errorf("args %q lack %q", c.Args, want)
			}
		}
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "datadog-api-key" && v.Secret != nil && v.Secret.SecretName == "datadog"
		}) {
			t.Error("the Datadog API key Secret is not mounted")
		}
		if !slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "host-cgroup" && v.HostPath != nil && v.HostPath.Path == "/sys/fs/cgroup"
		}) || !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == "host-cgroup" && m.ReadOnly && m.MountPath == "/host/sys/fs/cgroup"
		}) {
			t.Error("the host's cgroup tree is not mounted read-only at /host/sys/fs/cgroup (usage metrics)")
		}
	})

	t.Run("out of the box the agent writes bounded perf.data files into a size-limited emptyDir and prints no debug lines", func(t *testing.T) {
		ds := convert[appsv1.DaemonSet](t, find(t, render(t, "--set", "agent.enabled=true"), "DaemonSet", "kprof-agent"))
		pod := ds.Spec.Template.Spec
		c := container(t, pod, "agent")
		for _, want := range []string{
			"--enable-debug-consumer=false", "--enable-profiling-perfdata", "--profiling-perfdata-path=/var/lib/kprof/perfdata",
			"--profiling-perfdata-max-files=60", "--profiling-perfdata-max-bytes=268435456",
		} {
			if !slices.Contains(c.Args, want) {
				t.Errorf("args %q lack %q", c.Args, want)
			}
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == "perfdata" && m.MountPath == "/var/lib/kprof/perfdata" && !m.ReadOnly
		}) {
			t.Errorf("no writable perfdata volume at /var/lib/kprof/perfdata: %+v", c.VolumeMounts)
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "perfdata" })
		if i < 0 || pod.Volumes[i].EmptyDir == nil || pod.Volumes[i].EmptyDir.SizeLimit == nil {
			t.Fatalf("the perfdata volume is not an emptyDir with a sizeLimit: %+v", pod.Volumes)
		}
		if limit := pod.Volumes[i].EmptyDir.SizeLimit.Value(); limit != 1<<30 || limit <= 268435456 {
			t.Errorf("perfdata emptyDir sizeLimit %d bytes, want 1Gi, above the 256 MiB the files may take", limit)
		}
	})

	t.Run("old kernels and extra capabilities add theirs; SYS_ADMIN is never added by default", func(t *testing.T) {
		ds := convert[appsv1.DaemonSet](t, find(t, render(t, everyOption.args()...), "DaemonSet", "prof-agent"))
		c := container(t, ds.Spec.Template.Spec, "agent")
		want := []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE", "SYS_RESOURCE", "IPC_LOCK", "CHECKPOINT_RESTORE"}
		if got := c.SecurityContext.Capabilities.Add; !slices.Equal(got, want) {
			t.Errorf("add %v, want %v", got, want)
		}
		if c.Image != "registry.example.com/kprof:v9.9.8" || c.ImagePullPolicy != corev1.PullAlways {
			t.Errorf("agent image %s (%s), want the agent's override", c.Image, c.ImagePullPolicy)
		}
		if !slices.Contains(c.Args, "--datadog-agent-url=http://$(HOST_IP):8126/profiling/v1/input") || !slices.Contains(c.Args, "--enable-debug-consumer=false") {
			t.Errorf("args %q", c.Args)
		}
	})
}

func TestAgentConfigsAreValidForTheAgent(t *testing.T) {
	// The chart's default config plus the two other forms agent-consumers.yaml adds.
	for _, vs := range []valueSet{valueSets[1]} {
		objs := render(t, vs.args()...)
		cm := convert[corev1.ConfigMap](t, find(t, objs, "ConfigMap", "kprof-agent-configs"))
		want := map[string]collection.CollectionConfig{
			"cpu-clock.yaml":   {Name: "cpu-clock", Version: 1, Event: "cpu-clock", Frequency: 99, Interval: 10e9},
			"cpu-profile.yaml": {Name: "cpu-profile", Version: 1, Event: "cpu-clock", SamplePeriod: 1281018368, Interval: 10e9},
			"page-faults.yaml": {Name: "page-faults", Version: 2, Event: "page-faults", SamplePeriod: 100, Interval: 30e9},
		}
		if len(cm.Data) != len(want) {
			t.Errorf("ConfigMap keys %v, want %d files", slices.Sorted(maps.Keys(cm.Data)), len(want))
		}
		for file, w := range want {
			t.Run(file+" parses as the agent parses it", func(t *testing.T) {
				got, err := collection.ParseFile(file, []byte(cm.Data[file]))
				if err != nil {
					t.Fatalf("%v\n%s", err, cm.Data[file])
				}
				w.Source = file
				if got != w {
					t.Errorf("parsed %+v, want %+v", got, w)
				}
			})
		}
	}
}

// TestDeploymentArgsAreFlagsOfKprof checks each flag the chart passes against the flags
// cmd/kprof defines (read from its source, so the test needs no build of the binary).
func TestDeploymentArgsAreFlagsOfKprof(t *testing.T) {
	operatorFlags := flagsDefinedIn(t, "operator")
	agentFlags := flagsDefinedIn(t, "agent")
	probeFlags := flagsDefinedIn(t, "probe")
	// The root's persistent flags (--log-level, --log-format) are every subcommand's.
	for name := range flagsDefinedIn(t, "logging") {
		operatorFlags[name], agentFlags[name], probeFlags[name] = true, true, true
	}
	for _, vs := range append(valueSets, everyOption) {
		t.Run("with "+vs.name, func(t *testing.T) {
			for _, o := range render(t, vs.args()...) {
				var (
					spec  corev1.PodSpec
					flags map[string]bool
				)
				switch o.GetKind() {
				case "Deployment":
					spec, flags = convert[appsv1.Deployment](t, o).Spec.Template.Spec, operatorFlags
				case "DaemonSet":
					spec, flags = convert[appsv1.DaemonSet](t, o).Spec.Template.Spec, agentFlags
				case "Pod": // the helm test pod
					spec, flags = convert[corev1.Pod](t, o).Spec, probeFlags
				default:
					continue
				}
				args := spec.Containers[0].Args
				for _, a := range args[1:] {
					if !strings.HasPrefix(a, "-") {
						continue // a positional argument (kprof probe URL)
					}
					name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
					if !flags[name] {
						t.Errorf("%s %s passes %s, which `kprof %s` does not define (the chart's flag mapping: "+
							"templates/operator-deployment.yaml, templates/_agent.tpl, templates/tests/)", o.GetKind(), o.GetName(), a, args[0])
					}
				}
			}
		})
	}
}

// flagsDefinedIn returns the flag names that cmd/kprof/<sub>*.go define with the pflag
// XxxVar/XxxVarP/Xxx calls: the string literal that names the flag.
func flagsDefinedIn(t *testing.T, sub string) map[string]bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "cmd", "kprof", sub+"*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no cmd/kprof/%s*.go: %v", sub, err)
	}
	flags := map[string]bool{}
	fset := token.NewFileSet()
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, file, nil, 0)
		if err != nil {
			t.Fatalf("parse %s: %v", file, err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || !isFlagFunc(sel.Sel.Name) {
				return true
			}
			for _, a := range call.Args {
				if lit, ok := a.(*ast.BasicLit); ok && lit.Kind == token.STRING {
					if s, err := strconv.Unquote(lit.Value); err == nil {
						flags[s] = true
					}
					break
				}
			}
			return true
		})
	}
	if len(flags) == 0 {
		t.Fatalf("found no flag definitions in cmd/kprof/%s*.go", sub)
	}
	return flags
}

func isFlagFunc(name string) bool {
	name = strings.TrimSuffix(strings.TrimSuffix(name, "P"), "Var")
	switch name {
	case "String", "Bool", "Int", "Int32", "Int64", "Uint", "Uint64", "Float64", "Duration",
		"StringSlice", "StringArray", "StringToString", "IntSlice":
		return true
	}
	return false
}

func container(t *testing.T, pod corev1.PodSpec, name string) corev1.Container {
	t.Helper()
	for _, c := range pod.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no container %s", name)
	return corev1.Container{}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func port(c corev1.Container, name string) int32 {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	return 0
}

func checkProbe(t *testing.T, what string, p *corev1.Probe, path, port string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path || p.HTTPGet.Port.String() != port {
		t.Errorf("%s probe %+v, want GET %s on port %s", what, p, path, port)
	}
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
