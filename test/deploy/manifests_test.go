package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/testenv"
)

// agentCaps is the agent's documented capability set (config/agent/daemonset.yaml, Dockerfile).
var agentCaps = []corev1.Capability{"BPF", "PERFMON", "SYS_PTRACE", "SYSLOG"}

// oldKernelCaps are what config/agent-old-kernel adds for kernels < 5.11.
var oldKernelCaps = []corev1.Capability{"SYS_RESOURCE", "IPC_LOCK"}

func TestConfigDefaultIsCreatedInTheAPIServer(t *testing.T) {
	p := cluster(t)
	want := map[string]bool{
		"Namespace/kprof-system":                                 false,
		"CustomResourceDefinition/profilingconfigs.profiling.io": false,
		"CustomResourceDefinition/profilecaptures.profiling.io":  false,
		"ServiceAccount/kprof-operator":                          false,
		"ServiceAccount/kprof-agent":                             false,
		"ClusterRole/kprof-operator":                             false,
		"Role/kprof-operator":                                    false,
		"ClusterRoleBinding/kprof-operator":                      false,
		"RoleBinding/kprof-operator":                             false,
		"ClusterRole/kprof-agent":                                false,
		"ClusterRoleBinding/kprof-agent":                         false,
		"Deployment/kprof-operator":                              false,
		"DaemonSet/kprof-agent":                                  false,
		"ConfigMap/kprof-agent-configs":                          false,
		"Service/kprof-ui":                                       false,
	}
	for _, o := range p.objs {
		key := o.GetKind() + "/" + o.GetName()
		if _, ok := want[key]; !ok {
			t.Errorf("config/default renders %s, which this test does not know: add it here and to the RBAC tests if it grants anything", key)
		}
		want[key] = true
		if ns := o.GetNamespace(); ns != "" && ns != systemNamespace {
			t.Errorf("%s is in namespace %s, want %s", describe(o), ns, systemNamespace)
		}
		// Every object really is in the API server (createAll did it; read it back).
		var got unstructured.Unstructured
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := p.c.Get(t.Context(), client.ObjectKeyFromObject(o), &got); err != nil {
			t.Errorf("read back %s: %v", describe(o), err)
		}
	}
	for key, seen := range want {
		if !seen {
			t.Errorf("config/default does not render %s", key)
		}
	}
	t.Run("no portforward RBAC is in the default", func(t *testing.T) {
		for _, o := range p.objs {
			if strings.Contains(o.GetName(), "portforward") {
				t.Errorf("config/default renders %s", describe(o))
			}
		}
	})
}

func TestOptInVariantsRenderAndAreAcceptedByTheAPIServer(t *testing.T) {
	p := cluster(t)
	root := filepath.Join(testenv.RepoRoot(), "config")
	all := t.TempDir()
	rel, err := filepath.Rel(all, root)
	if err != nil {
		t.Fatal(err)
	}
	// Every component at once: they must compose (kustomize refuses absolute paths).
	composed := "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- " + rel + "/default\ncomponents:\n" +
		"- " + rel + "/components/portforward\n- " + rel + "/components/agent-old-kernel\n- " + rel + "/components/agent-seccomp-unconfined\n"
	if err := os.WriteFile(filepath.Join(all, "kustomization.yaml"), []byte(composed), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, dir string
		check     func(t *testing.T, objs []*unstructured.Unstructured)
	}{
		{"config/portforward binds pods/portforward and turns --port-forward on", "config/portforward", func(t *testing.T, objs []*unstructured.Unstructured) {
			crb := convert[rbacv1.ClusterRoleBinding](t, find(t, objs, "ClusterRoleBinding", "kprof-operator-portforward"))
			if crb.RoleRef.Name != "kprof-operator-portforward" || len(crb.Subjects) != 1 || crb.Subjects[0].Name != "kprof-operator" || crb.Subjects[0].Namespace != systemNamespace {
				t.Errorf("binding = %+v", crb)
			}
			find(t, objs, "ClusterRole", "kprof-operator-portforward")
			if args := operatorContainer(t, objs).Args; !slices.Contains(args, "--port-forward") {
				t.Errorf("operator args %q lack --port-forward", args)
			}
			if args := operatorContainer(t, p.objs).Args; slices.Contains(args, "--port-forward") {
				t.Errorf("config/default's operator has --port-forward: %q", args)
			}
		}},
		{"config/agent-old-kernel adds SYS_RESOURCE and IPC_LOCK and nothing else", "config/agent-old-kernel", func(t *testing.T, objs []*unstructured.Unstructured) {
			got := agentContainer(t, objs).SecurityContext.Capabilities.Add
			if want := append(slices.Clone(agentCaps), oldKernelCaps...); !sameCaps(got, want) {
				t.Errorf("capabilities added = %v, want %v", got, want)
			}
		}},
		{"every component composes with the default", all, func(t *testing.T, objs []*unstructured.Unstructured) {
			ds := convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "kprof-agent"))
			if sp := ds.Spec.Template.Spec.SecurityContext.SeccompProfile; sp == nil || sp.Type != corev1.SeccompProfileTypeUnconfined {
				t.Errorf("agent-seccomp-unconfined: agent seccomp profile = %+v, want Unconfined", sp)
			}
			find(t, objs, "ClusterRoleBinding", "kprof-operator-portforward")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := kustomizeBuild(tc.dir)
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, objs)
			// Server-side dry run: admission, schema and strict decoding, nothing persisted.
			if err := applyAll(t.Context(), p.c, objs, true); err != nil {
				t.Fatalf("the API server refuses %s: %v", tc.dir, err)
			}
		})
	}
}

func TestOperatorDeploymentIsHardened(t *testing.T) {
	objs, err := kustomizeBuild("config/default")
	if err != nil {
		t.Fatal(err)
	}
	dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator"))
	pod := dep.Spec.Template.Spec
	c := operatorContainer(t, objs)
	sc := c.SecurityContext
	checks := []struct {
		what string
		ok   bool
	}{
		{"image is ghcr.io/kprof/kprof with a tag", strings.HasPrefix(c.Image, "ghcr.io/kprof/kprof:")},
		{"first arg is the operator subcommand", len(c.Args) > 0 && c.Args[0] == "operator"},
		{"--leader-elect", slices.Contains(c.Args, "--leader-elect")},
		{"runs as ServiceAccount kprof-operator", pod.ServiceAccountName == "kprof-operator"},
		{"mounts its token", pod.AutomountServiceAccountToken != nil && *pod.AutomountServiceAccountToken},
		{"pod runAsNonRoot", pod.SecurityContext != nil && ptrTrue(pod.SecurityContext.RunAsNonRoot)},
		{"pod runAsUser 65532", pod.SecurityContext != nil && ptrEq(pod.SecurityContext.RunAsUser, 65532)},
		{"pod runAsGroup 65532", pod.SecurityContext != nil && ptrEq(pod.SecurityContext.RunAsGroup, 65532)},
		{"seccomp RuntimeDefault", pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil && pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"no hostPID/hostNetwork/hostIPC", !pod.HostPID && !pod.HostNetwork && !pod.HostIPC},
		{"container securityContext set", sc != nil},
		{"readOnlyRootFilesystem", sc != nil && ptrTrue(sc.ReadOnlyRootFilesystem)},
		{"allowPrivilegeEscalation false", sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"not privileged", sc != nil && (sc.Privileged == nil || !*sc.Privileged)},
		{"capabilities drop ALL, add none", sc != nil && sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
		{"liveness GET /healthz on 8081", probeIs(c.LivenessProbe, "/healthz", c, 8081)},
		{"readiness GET /readyz on 8081", probeIs(c.ReadinessProbe, "/readyz", c, 8081)},
		{"metrics port 8080", hasPort(c, 8080) && slices.Contains(c.Args, "--metrics-bind-address=:8080")},
		{"probe address :8081", slices.Contains(c.Args, "--health-probe-bind-address=:8081")},
		{"POD_NAMESPACE from metadata.namespace", envFromField(c, "POD_NAMESPACE", "metadata.namespace")},
		{"resource requests and a memory limit", c.Resources.Requests.Cpu().MilliValue() > 0 && c.Resources.Requests.Memory().Value() > 0 && c.Resources.Limits.Memory().Value() > 0},
		{"writable /var/lib/kprof/spool", mountedFromVolume(pod, c, "/var/lib/kprof/spool")},
		{"writable /var/lib/kprof/profiles", mountedFromVolume(pod, c, "/var/lib/kprof/profiles")},
		{"writable /tmp", mountedFromVolume(pod, c, "/tmp")},
		{"web UI on port 8082 (--ui-listen)", hasPort(c, 8082) && slices.Contains(c.Args, "--ui-listen=:8082")},
		{"--spool-dir and --profiles-dir are the mounted volumes", slices.Contains(c.Args, "--spool-dir=/var/lib/kprof/spool") && slices.Contains(c.Args, "--profiles-dir=/var/lib/kprof/profiles")},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("operator Deployment: %s: not so", ck.what)
		}
	}
	t.Run("the ClusterIP Service kprof-ui selects the operator's pods and reaches its UI port", func(t *testing.T) {
		svc := convert[corev1.Service](t, find(t, objs, "Service", "kprof-ui"))
		if svc.Spec.Type != corev1.ServiceTypeClusterIP {
			t.Errorf("type %q, want ClusterIP", svc.Spec.Type)
		}
		if len(svc.Spec.Selector) == 0 || !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(dep.Spec.Template.Labels)) {
			t.Errorf("selector %v does not select the operator's pods %v", svc.Spec.Selector, dep.Spec.Template.Labels)
		}
		target := -1
		if len(svc.Spec.Ports) == 1 {
			for _, p := range c.Ports {
				if p.Name == svc.Spec.Ports[0].TargetPort.String() {
					target = int(p.ContainerPort)
				}
			}
		}
		if target != 8082 || svc.Spec.Ports[0].Port != 8082 {
			t.Errorf("ports %+v, want 8082 → the container's 8082", svc.Spec.Ports)
		}
	})
	t.Run("profiles retention keeps the profiles emptyDir a GiB below its sizeLimit, so kubelet never evicts the operator", func(t *testing.T) {
		var maxBytes int64
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--profiles-max-bytes="); ok {
				if maxBytes, err = strconv.ParseInt(v, 10, 64); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
		}
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "profiles" })
		if i < 0 || pod.Volumes[i].EmptyDir == nil || pod.Volumes[i].EmptyDir.SizeLimit == nil {
			t.Fatal("no profiles emptyDir with a sizeLimit")
		}
		limit := pod.Volumes[i].EmptyDir.SizeLimit.Value()
		if maxBytes <= 0 || maxBytes > limit-1<<30 {
			t.Errorf("--profiles-max-bytes=%d with a profiles emptyDir sizeLimit of %d bytes: want a bound at most sizeLimit - 1 GiB (room for captures in progress)", maxBytes, limit)
		}
		if !slices.ContainsFunc(c.Args, func(a string) bool { return strings.HasPrefix(a, "--profiles-max-age=") }) {
			t.Error("no --profiles-max-age")
		}
	})
	t.Run("terminationGracePeriodSeconds outlasts the shutdown grace plus the manager's 5s", func(t *testing.T) {
		grace := 25 * time.Second // the flag's default
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--shutdown-grace-period="); ok {
				if grace, err = time.ParseDuration(v); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
		}
		if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= grace+5*time.Second {
			t.Errorf("terminationGracePeriodSeconds = %v, want more than %s", pod.TerminationGracePeriodSeconds, grace+5*time.Second)
		}
	})
}

func TestAgentDaemonSetIsHardenedWithExactlyTheDocumentedCapabilities(t *testing.T) {
	objs, err := kustomizeBuild("config/default")
	if err != nil {
		t.Fatal(err)
	}
	ds := convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "kprof-agent"))
	pod := ds.Spec.Template.Spec
	c := agentContainer(t, objs)
	sc := c.SecurityContext
	checks := []struct {
		what string
		ok   bool
	}{
		{"image is ghcr.io/kprof/kprof with a tag", strings.HasPrefix(c.Image, "ghcr.io/kprof/kprof:")},
		{"agent --config-dir=/etc/kprof/agent", len(c.Args) > 0 && c.Args[0] == "agent" && slices.Contains(c.Args, "--config-dir=/etc/kprof/agent")},
		{"runs as ServiceAccount kprof-agent", pod.ServiceAccountName == "kprof-agent"},
		{"hostPID", pod.HostPID},
		{"no hostNetwork/hostIPC", !pod.HostNetwork && !pod.HostIPC},
		{"tolerates every taint", slices.ContainsFunc(pod.Tolerations, func(tol corev1.Toleration) bool {
			return tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == ""
		})},
		{"NODE_NAME from spec.nodeName", envFromField(c, "NODE_NAME", "spec.nodeName")},
		{"container securityContext set", sc != nil},
		{"runs as uid 0 (capabilities of a non-root uid never become effective)", sc != nil && ptrEq(sc.RunAsUser, 0) && sc.RunAsNonRoot != nil && !*sc.RunAsNonRoot},
		{"not privileged", sc != nil && sc.Privileged != nil && !*sc.Privileged},
		{"allowPrivilegeEscalation false", sc != nil && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
		{"readOnlyRootFilesystem", sc != nil && ptrTrue(sc.ReadOnlyRootFilesystem)},
		{"capabilities drop ALL", sc != nil && sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"})},
		{"seccomp RuntimeDefault", pod.SecurityContext != nil && pod.SecurityContext.SeccompProfile != nil && pod.SecurityContext.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
		{"liveness and readiness GET /healthz on 9091", probeIs(c.LivenessProbe, "/healthz", c, 9091) && probeIs(c.ReadinessProbe, "/healthz", c, 9091)},
		{"probe address :9091", slices.Contains(c.Args, "--health-probe-bind-address=:9091")},
		{"resource requests and a memory limit", c.Resources.Requests.Cpu().MilliValue() > 0 && c.Resources.Requests.Memory().Value() > 0 && c.Resources.Limits.Memory().Value() > 0},
		{"writable /var/lib/kprof/perfdata", mountedFromVolume(pod, c, "/var/lib/kprof/perfdata")},
		{"profiles go to perf.data files out of the box, bounded (60 files, 256 MiB); no debug lines", slices.Contains(c.Args, "--enable-profiling-perfdata") &&
			slices.Contains(c.Args, "--profiling-perfdata-path=/var/lib/kprof/perfdata") && slices.Contains(c.Args, "--profiling-perfdata-max-files=60") &&
			slices.Contains(c.Args, "--profiling-perfdata-max-bytes=268435456") && slices.Contains(c.Args, "--enable-debug-consumer=false")},
		{"the perfdata emptyDir's sizeLimit holds the 256 MiB the files may take", slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool {
			return v.Name == "perfdata" && v.EmptyDir != nil && v.EmptyDir.SizeLimit != nil && v.EmptyDir.SizeLimit.Value() > 268435456
		})},
		{"configs mounted read-only from ConfigMap kprof-agent-configs", configMapMountedReadOnly(pod, c, "/etc/kprof/agent", "kprof-agent-configs")},
		{"the only hostPath volume is the cgroup tree, mounted read-only", onlyHostPathIsCgroupReadOnly(pod, c)},
		{"--cgroup-root points at the host's cgroup tree", slices.Contains(c.Args, "--cgroup-root=/host/sys/fs/cgroup")},
	}
	for _, ck := range checks {
		if !ck.ok {
			t.Errorf("agent DaemonSet: %s: not so", ck.what)
		}
	}
	if sc != nil && sc.Capabilities != nil && !sameCaps(sc.Capabilities.Add, agentCaps) {
		t.Errorf("agent capabilities added = %v, want exactly %v", sc.Capabilities.Add, agentCaps)
	}
	t.Run("the documented capability set is the one the Dockerfile names", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Dockerfile"))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, len(agentCaps))
		for i, c := range agentCaps {
			names[i] = string(c)
		}
		if want := "(" + strings.Join(names, ", ") + ";"; !strings.Contains(strings.Join(strings.Fields(string(raw)), " "), want) {
			t.Errorf("Dockerfile does not document the agent's capabilities as %q", want)
		}
	})
}

func operatorContainer(t *testing.T, objs []*unstructured.Unstructured) corev1.Container {
	t.Helper()
	dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "kprof-operator"))
	if len(dep.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("operator Deployment has %d containers, want 1", len(dep.Spec.Template.Spec.Containers))
	}
	return dep.Spec.Template.Spec.Containers[0]
}

func agentContainer(t *testing.T, objs []*unstructured.Unstructured) corev1.Container {
	t.Helper()
	ds := convert[appsv1.DaemonSet](t, find(t, objs, "DaemonSet", "kprof-agent"))
	if len(ds.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("agent DaemonSet has %d containers, want 1", len(ds.Spec.Template.Spec.Containers))
	}
	c := ds.Spec.Template.Spec.Containers[0]
	if c.SecurityContext == nil || c.SecurityContext.Capabilities == nil {
		t.Fatal("agent container has no capabilities in its securityContext")
	}
	return c
}

func sameCaps(got, want []corev1.Capability) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	return slices.Equal(g, w)
}

func ptrTrue(b *bool) bool { return b != nil && *b }

func ptrEq(p *int64, v int64) bool { return p != nil && *p == v }

func hasPort(c corev1.Container, port int32) bool {
	return slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port })
}

// probeIs reports whether p is an HTTP GET of path on port (by number or by the name of a
// container port with that number).
func probeIs(p *corev1.Probe, path string, c corev1.Container, port int32) bool {
	if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != path {
		return false
	}
	if p.HTTPGet.Port.IntValue() == int(port) {
		return true
	}
	return slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool {
		return cp.Name != "" && cp.Name == p.HTTPGet.Port.String() && cp.ContainerPort == port
	})
}

func envFromField(c corev1.Container, name, fieldPath string) bool {
	return slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
		return e.Name == name && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == fieldPath
	})
}

// mountedFromVolume reports whether path is a writable mount of an emptyDir or a PVC.
func mountedFromVolume(pod corev1.PodSpec, c corev1.Container, path string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path || m.ReadOnly {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil) {
				return true
			}
		}
	}
	return false
}

func configMapMountedReadOnly(pod corev1.PodSpec, c corev1.Container, path, configMap string) bool {
	for _, m := range c.VolumeMounts {
		if m.MountPath != path || !m.ReadOnly {
			continue
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil && v.ConfigMap.Name == configMap {
				return true
			}
		}
	}
	return false
}

// onlyHostPathIsCgroupReadOnly: the agent's one host directory is /sys/fs/cgroup
// (usage metrics), mounted read-only at /host/sys/fs/cgroup.
func onlyHostPathIsCgroupReadOnly(pod corev1.PodSpec, c corev1.Container) bool {
	var names []string
	for _, v := range pod.Volumes {
		if v.HostPath != nil {
			if v.HostPath.Path != "/sys/fs/cgroup" {
				return false
			}
			names = append(names, v.Name)
		}
	}
	if len(names) != 1 {
		return false
	}
	for _, m := range c.VolumeMounts {
		if m.Name == names[0] {
			return m.ReadOnly && m.MountPath == "/host/sys/fs/cgroup"
		}
	}
	return false
}
