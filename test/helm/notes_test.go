package helm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kprof/kprof/internal/testenv"
)

// notesCase is one configuration whose NOTES are checked.
type notesCase struct {
	name    string
	set     string
	want    []string
	notWant []string
	// copies are the volumes whose copy-out recipe the NOTES give, run against the API server.
	copies []string
}

var notesCases = []notesCase{
	{name: "the default values", set: "",
		want: []string{"kubectl get kpc -A", "helm test kprof -n notes-0", "Profiles of configs without s3Config (volume profiles) stay in the operator pod.",
			"get lease kprof-operator.profiling.io", "The web UI", "  kubectl -n notes-0 port-forward svc/kprof-ui 8080:8082\n  http://127.0.0.1:8080\n"},
		notWant: []string{"The node agent", "With 1 replicas"}, copies: []string{"profiles"}},
	{name: "a default config storing locally", set: "defaultConfig.enabled=true,defaultConfig.localStorage.path=team-a",
		want:   []string{"kubectl -n notes-1 get kpc default", "stores below /var/lib/kprof/profiles/team-a in the operator pod (an emptyDir, lost with the pod"},
		copies: []string{"profiles"}},
	{name: "a default config storing in S3, one replica without leader election", set: "defaultConfig.enabled=true,defaultConfig.s3.bucket=profiles,defaultConfig.s3.prefix=prod,leaderElection.enabled=false",
		want:    []string{"stores in s3://profiles/prod.", "kubectl -n notes-2 get kpc default"},
		notWant: []string{"volume profiles", "get lease"}},
	{name: "the agent with the debug consumer only", set: "agent.enabled=true,agent.consumers.debug.enabled=true,agent.consumers.perfdata.enabled=false,agent.consumers.pprof.enabled=false",
		want:    []string{"Profiles go to:\n  - the agent's log, one line per profile", "kubectl -n notes-3 logs daemonset/kprof-agent"},
		notWant: []string{"nowhere", "perf.data", "pprof files"}},
	{name: "the agent with the pprof consumer only", set: "agent.enabled=true,agent.consumers.debug.enabled=false,agent.consumers.perfdata.enabled=false,agent.consumers.pprof.enabled=true",
		want:    []string{"pprof files (pprof-*.pb.gz, for `go tool pprof`) in /var/lib/kprof/pprof of each agent pod, an emptyDir lost with the pod", "The pprof files (volume pprof) stay in the agent pod."},
		notWant: []string{"nowhere", "perf.data", "the agent's log"}, copies: []string{"pprof"}},
	{name: "the agent with perf.data files kept on the node", set: "agent.enabled=true,agent.consumers.debug.enabled=false,agent.consumers.perfdata.enabled=true,agent.consumers.perfdata.hostPath=/var/lib/kprof-perf,agent.consumers.pprof.enabled=false",
		want:    []string{"perf.data files (perf-*.data, for `perf report` and `perf script`) in /var/lib/kprof/perfdata of each agent pod, kept on the node in /var/lib/kprof-perf.", "perf report -i"},
		notWant: []string{"nowhere", "pprof files"}, copies: []string{"perfdata"}},
	{name: "the agent with every consumer off", set: "agent.enabled=true,agent.consumers.debug.enabled=false,agent.consumers.perfdata.enabled=false,agent.consumers.pprof.enabled=false",
		want:    []string{"Profiles go nowhere: every consumer in agent.consumers is off"},
		notWant: []string{"Profiles go to:"}},
	{name: "the agent sending to Datadog and OTLP", set: "agent.enabled=true,agent.consumers.debug.enabled=false,agent.consumers.perfdata.enabled=false,agent.consumers.pprof.enabled=false," +
		"agent.consumers.datadog.enabled=true,agent.consumers.datadog.site=datadoghq.eu,agent.consumers.datadog.apiKeySecret.name=dd,agent.consumers.datadog.env=prod," +
		"agent.consumers.otlp.enabled=true,agent.consumers.otlp.endpoint=otel.observability:4317,agent.consumers.otlp.insecure=true",
		want: []string{"Datadog, service of each workload, env prod: agentless to datadoghq.eu.",
			"the OpenTelemetry collector at otel.observability:4317 (OTLP/gRPC, plain text)."},
		notWant: []string{"nowhere", "the agent's log"}},
	{name: "two replicas and the UI on another port", set: "operator.replicas=2,ui.port=9000",
		want: []string{"kubectl -n notes-8 port-forward svc/kprof-ui 8080:9000", "With 2 replicas only the leader captures",
			`kubectl -n notes-8 port-forward "pod/$(kubectl -n notes-8 get lease kprof-operator.profiling.io -o jsonpath='{.spec.holderIdentity}' | cut -d_ -f1)" 8080:9000`}},
	{name: "the UI reading the default config's S3 store", set: "defaultConfig.enabled=true,defaultConfig.s3.bucket=profiles,defaultConfig.s3.prefix=prod,ui.store=s3://profiles/prod",
		want:    []string{"kubectl -n notes-9 port-forward svc/kprof-ui 8080:8082", "It lists s3://profiles/prod."},
		notWant: []string{"to list those, set ui.store", "the leader's pod"}},
	{name: "the UI off", set: "ui.enabled=false",
		notWant: []string{"The web UI", "port-forward"}},
}

// getPC matches kubectl's `get pc`, which lists PriorityClasses, not ProfilingConfigs.
var getPC = regexp.MustCompile(`get pc\b`)

// testNotes renders the NOTES of each notesCase with `helm install --dry-run=server` and checks
// them; the copy-out recipes are run for real with kubectl (all but the kubectl cp, which needs
// a kubelet): the ephemeral container they add must reach the API server mounting the volume.
func testNotes(t *testing.T, c client.Client, kubeconfig string) {
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	if _, err := os.Stat(kubectl); err != nil {
		kubectl = filepath.Join(os.Getenv("HOME"), ".cache", "kprof", "k8s", testenv.K8sVersion, "kubectl")
	}
	for i, tc := range notesCases {
		t.Run("NOTES with "+tc.name+" say where profiles go", func(t *testing.T) {
			ns := fmt.Sprintf("notes-%d", i)
			// The CRD belongs to the release installed before: another release cannot adopt it.
			args := []string{"install", release, chartDir, "--namespace", ns, "--dry-run=server", "--kubeconfig", kubeconfig, "--set", "crds.install=false"}
			if tc.set != "" {
				args = append(args, "--set", tc.set)
			}
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
			}
			_, notes, ok := strings.Cut(out, "NOTES:\n")
			if !ok {
				t.Fatalf("helm install --dry-run printed no NOTES:\n%s", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(notes, w) {
					t.Errorf("NOTES say %q, which does not apply:\n%s", w, notes)
				}
			}
			if m := getPC.FindString(notes); m != "" {
				t.Errorf("NOTES say %q: kubectl's pc is PriorityClasses; want kpc", m)
			}
			if len(tc.copies) > 0 {
				runCopyRecipes(t, c, kubectl, kubeconfig, ns, tc, notes)
			}
		})
	}
}

// runCopyRecipes creates the pods the recipes pick (from the chart's own templates), runs each
// recipe's POD=, echo and kubectl debug lines, and checks the ephemeral container they add.
func runCopyRecipes(t *testing.T, c client.Client, kubectl, kubeconfig, ns string, tc notesCase, notes string) {
	t.Helper()
	if _, err := os.Stat(kubectl); err != nil {
		t.Fatalf("kubectl not found at %s: %v; run hack/install-kube.sh kubectl (make tools)", kubectl, err)
	}
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)}); err != nil {
		t.Fatal(err)
	}
	renderArgs := []string{"--namespace", ns}
	if tc.set != "" {
		renderArgs = append(renderArgs, "--set", tc.set)
	}
	objs := render(t, renderArgs...)
	pods := map[string]*corev1.Pod{} // by component
	for _, o := range objs {
		var tpl corev1.PodTemplateSpec
		switch o.GetKind() {
		case "Deployment":
			tpl = convert[appsv1.Deployment](t, o).Spec.Template
		case "DaemonSet":
			tpl = convert[appsv1.DaemonSet](t, o).Spec.Template
		default:
			continue
		}
		// The API server admits a pod only with its ServiceAccount in place.
		sa := &corev1.ServiceAccount{ObjectMeta: metaName(tpl.Spec.ServiceAccountName)}
		sa.Namespace = ns
		if err := c.Create(ctx, sa); err != nil {
			t.Fatalf("create ServiceAccount %s: %v", sa.Name, err)
		}
		pod := &corev1.Pod{ObjectMeta: tpl.ObjectMeta, Spec: tpl.Spec}
		pod.Namespace, pod.Name = ns, o.GetName()+"-0"
		if err := c.Create(ctx, pod); err != nil {
			t.Fatalf("create pod %s from the %s template: %v", pod.Name, o.GetKind(), err)
		}
		pods[pod.Labels["app.kubernetes.io/component"]] = pod
		if o.GetKind() == "Deployment" {
			// The leader election Lease the operator recipe reads, as controller-runtime writes it.
			lease := &coordinationv1.Lease{ObjectMeta: metaName("kprof-operator.profiling.io"),
				Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To(pod.Name + "_6f1c2e0a-7d5b-4c39-9e8f-0a1b2c3d4e5f")}}
			lease.Namespace = ns
			if err := c.Create(ctx, lease); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, volume := range tc.copies {
		t.Run("the "+volume+" recipe adds an ephemeral container mounting the volume", func(t *testing.T) {
			script := recipe(t, notes, volume)
			dir := t.TempDir()
			runCtx, cancel := context.WithTimeout(ctx, time.Minute)
			defer cancel()
			cmd := exec.CommandContext(runCtx, "bash", "-euo", "pipefail", "-c", script)
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "PATH="+filepath.Dir(kubectl)+":"+os.Getenv("PATH"))
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("the NOTES' recipe\n%s\nfailed: %v\n%s", script, err, out)
			}
			component := "agent"
			if volume == "profiles" {
				component = "operator"
			}
			pod := pods[component]
			if pod == nil {
				t.Fatalf("no %s pod rendered", component)
			}
			got := &corev1.Pod{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(pod), got); err != nil {
				t.Fatal(err)
			}
			var ec *corev1.EphemeralContainer
			for i := range got.Spec.EphemeralContainers {
				if got.Spec.EphemeralContainers[i].Name == "copy-"+volume {
					ec = &got.Spec.EphemeralContainers[i]
				}
			}
			if ec == nil {
				t.Fatalf("pod %s has no ephemeral container copy-%s after the recipe: %+v", pod.Name, volume, got.Spec.EphemeralContainers)
			}
			if len(ec.VolumeMounts) != 1 || ec.VolumeMounts[0].Name != volume || ec.VolumeMounts[0].MountPath != "/out" || !ec.VolumeMounts[0].ReadOnly {
				t.Errorf("ephemeral container mounts %+v, want %s read-only at /out", ec.VolumeMounts, volume)
			}
			if !strings.HasPrefix(ec.Image, "busybox") {
				t.Errorf("ephemeral container image %s, want busybox (it has tar, which kubectl cp runs)", ec.Image)
			}
			if component == "operator" {
				// The operator pod runs as non-root: busybox must too, as the operator's user.
				sc := ec.SecurityContext
				if sc == nil || deref(sc.RunAsUser) != deref(got.Spec.SecurityContext.RunAsUser) || !deref(sc.RunAsNonRoot) {
					t.Errorf("ephemeral container security context %+v, want the pod's user %d", sc, deref(got.Spec.SecurityContext.RunAsUser))
				}
			}
		})
	}
}

// recipe returns the shell lines of the NOTES' copy-out recipe of volume: the nearest POD= line
// before it, its echo and its kubectl debug line (kubectl cp and what reads the copy need a kubelet).
func recipe(t *testing.T, notes, volume string) string {
	t.Helper()
	lines := strings.Split(notes, "\n")
	echo := -1
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimSpace(l), "echo '") && strings.Contains(l, "> copy-"+volume+".json") {
			echo = i
		}
	}
	if echo < 1 || echo+1 >= len(lines) {
		t.Fatalf("no copy-out recipe for %s in the NOTES:\n%s", volume, notes)
	}
	pod := ""
	for i := echo - 1; i >= 0 && pod == ""; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "POD=") {
			pod = l
		}
	}
	debug, cp := strings.TrimSpace(lines[echo+1]), strings.TrimSpace(lines[echo+2])
	if pod == "" || !strings.Contains(debug, " debug \"$POD\" ") || !strings.Contains(cp, " cp -c copy-"+volume+" ") {
		t.Fatalf("the %s recipe is not POD=, echo, kubectl debug, kubectl cp:\n%s", volume, strings.Join(lines[max(0, echo-4):echo+3], "\n"))
	}
	return strings.Join([]string{pod, strings.TrimSpace(lines[echo]), debug}, "\n")
}
