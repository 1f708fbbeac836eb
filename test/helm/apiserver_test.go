package helm

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kprof/kprof/internal/testenv"
)

var (
	crdGVK = schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"}
	pcGVK  = schema.GroupVersionKind{Group: "profiling.io", Version: "v1alpha1", Kind: "ProfilingConfig"}
)

// TestChartInAnAPIServer installs the chart into a real kube-apiserver that starts without the
// ProfilingConfig CRD: once with helm itself (install, upgrade, uninstall), and once by creating
// each rendered object of every value set with strict field validation, so that a field the
// API server does not know, a CEL rule of the CRD or a bad reference fails the test.
func TestChartInAnAPIServer(t *testing.T) {
	env, err := testenv.Start(func(e *envtest.Environment) {
		e.CRDDirectoryPaths = nil // the chart installs the CRD
	})
	if err != nil {
		t.Fatalf("%v (%s)", err, "run hack/install-tools.sh")
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stop envtest: %v", err)
		}
	})
	c, err := client.New(env.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("helm install creates the ProfilingConfig after its CRD, upgrades update it, uninstall keeps both", func(t *testing.T) {
		kubeconfig := writeKubeconfig(t, env.Config)
		const ns = "helm-install"
		helmOK := func(args ...string) string {
			t.Helper()
			args = append(args, "--kubeconfig", kubeconfig)
			out, stderr, err := runHelm(t, args...)
			if err != nil {
				t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
			}
			return out
		}
		out := helmOK("install", release, chartDir, "--namespace", ns, "--create-namespace", "--set", "defaultConfig.enabled=true,agent.enabled=true")
		for _, want := range []string{
			"NOTES:", "kubectl -n helm-install rollout status deployment/kprof-operator",
			"ProfilingConfig default selects the annotated pods of namespace helm-install",
			"DaemonSet kprof-agent on every node, with 1 collection config(s)",
			"kubectl -n helm-install get kpc default",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("helm install output lacks %q:\n%s", want, out)
			}
		}
		pc := getProfilingConfig(t, c, ns, "default")
		if types, _, _ := unstructured.NestedStringSlice(pc.Object, "spec", "profileTypes"); !slices.Equal(types, []string{"cpu", "heap"}) {
			t.Errorf("installed spec.profileTypes %v, want [cpu heap]", types)
		}
		// The first upgrade adopts the config the install's hook created, as it is (see
		// upgrade_test.go); the next one applies what its values change.
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,agent.enabled=true")
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,agent.enabled=true,defaultConfig.profileTypes={goroutine}")
		pc = getProfilingConfig(t, c, ns, "default")
		if types, _, _ := unstructured.NestedStringSlice(pc.Object, "spec", "profileTypes"); !slices.Equal(types, []string{"goroutine"}) {
			t.Errorf("upgraded spec.profileTypes %v, want [goroutine]", types)
		}
		helmOK("uninstall", release, "--namespace", ns, "--wait", "--timeout", "1m")
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		for _, name := range []string{"profilingconfigs.profiling.io", "profilecaptures.profiling.io"} {
			if err := c.Get(t.Context(), client.ObjectKey{Name: name}, crd); err != nil {
				t.Errorf("the CRD %s after helm uninstall: %v; want it kept (helm.sh/resource-policy: keep)", name, err)
			}
		}
		// The ProfilingConfig has helm.sh/resource-policy keep: uninstall leaves it, as values.yaml says.
		getProfilingConfig(t, c, ns, "default")
		dep := &unstructured.Unstructured{}
		dep.SetAPIVersion("apps/v1")
		dep.SetKind("Deployment")
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "kprof-operator"}, dep); !apierrors.IsNotFound(err) {
			t.Errorf("the operator Deployment after helm uninstall: %v, want NotFound", err)
		}
	})

	testNotes(t, c, writeKubeconfig(t, env.Config))

	for i, vs := range valueSets {
		t.Run("the objects rendered with "+vs.name+" are accepted as they are", func(t *testing.T) {
			ns := fmt.Sprintf("values-%d", i)
			rel := fmt.Sprintf("kprof%d", i)
			out, stderr, err := runHelm(t, append([]string{"template", rel, chartDir, "--namespace", ns, "--kube-version", testenv.K8sVersion}, vs.args()...)...)
			if err != nil {
				t.Fatalf("helm template: %v\n%s", err, stderr)
			}
			objs, err := decodeObjects(out)
			if err != nil {
				t.Fatal(err)
			}
			createAll(t, c, ns, objs)
		})
	}
}

// createAll creates the namespace, then the CRDs (waiting until they are established), then
// everything else, the ProfilingConfigs last; and checks that each object reads back.
func createAll(t *testing.T, c client.Client, ns string, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := t.Context()
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metaName(ns)}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	rank := func(o *unstructured.Unstructured) int {
		switch o.GroupVersionKind() {
		case crdGVK:
			return 0
		case pcGVK:
			return 2
		}
		return 1
	}
	slices.SortStableFunc(objs, func(a, b *unstructured.Unstructured) int { return rank(a) - rank(b) })
	strict := client.FieldValidation("Strict")
	for _, o := range objs {
		if o.GetNamespace() != "" && o.GetNamespace() != ns {
			t.Errorf("%s %s is rendered into namespace %s, not the release's %s", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
		}
		want := o.DeepCopy()
		err := c.Create(ctx, o, strict)
		if o.GroupVersionKind() == crdGVK && apierrors.IsAlreadyExists(err) {
			// An earlier install created it: the rendered CRD must still be a valid update.
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(crdGVK)
			if err = c.Get(ctx, client.ObjectKeyFromObject(o), cur); err == nil {
				o.SetResourceVersion(cur.GetResourceVersion())
				err = c.Update(ctx, o, strict)
			}
		}
		if err != nil {
			t.Fatalf("create %s %s: %v", o.GetKind(), o.GetName(), err)
		}
		if o.GroupVersionKind() == crdGVK {
			waitEstablished(t, c, o.GetName())
		}
		got := &unstructured.Unstructured{}
		got.SetGroupVersionKind(o.GroupVersionKind())
		if err := c.Get(ctx, client.ObjectKeyFromObject(o), got); err != nil {
			t.Fatalf("get %s %s back: %v", o.GetKind(), o.GetName(), err)
		}
		// What the chart sets survives: the API server drops nothing (defaults aside).
		if spec, ok := want.Object["spec"].(map[string]any); ok && o.GetKind() != "CustomResourceDefinition" {
			if missing := missingFields(spec, got.Object["spec"], "spec"); len(missing) > 0 {
				t.Errorf("%s %s lost %v in the API server", o.GetKind(), o.GetName(), missing)
			}
		}
	}
}

// missingFields lists the paths of want that got lacks or has with another scalar value.
func missingFields(want, got any, path string) []string {
	switch w := want.(type) {
	case map[string]any:
		g, _ := got.(map[string]any)
		var missing []string
		for k, v := range w {
			missing = append(missing, missingFields(v, g[k], path+"."+k)...)
		}
		return missing
	case []any:
		g, _ := got.([]any)
		if len(g) != len(w) {
			return []string{path}
		}
		var missing []string
		for i := range w {
			missing = append(missing, missingFields(w[i], g[i], fmt.Sprintf("%s[%d]", path, i))...)
		}
		return missing
	default:
		if fmt.Sprint(want) != fmt.Sprint(got) {
			return []string{fmt.Sprintf("%s (%v, got %v)", path, want, got)}
		}
		return nil
	}
}

func waitEstablished(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		crd := &unstructured.Unstructured{}
		crd.SetGroupVersionKind(crdGVK)
		if err := c.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, err
		}
		conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
		for _, cond := range conds {
			m, _ := cond.(map[string]any)
			if m["type"] == "Established" && m["status"] == "True" {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
}

func getProfilingConfig(t *testing.T, c client.Client, ns, name string) *unstructured.Unstructured {
	t.Helper()
	pc := &unstructured.Unstructured{}
	pc.SetGroupVersionKind(pcGVK)
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, pc); err != nil {
		t.Fatalf("get ProfilingConfig %s/%s: %v", ns, name, err)
	}
	return pc
}

// writeKubeconfig writes a kubeconfig for helm that reaches the envtest API server.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["envtest"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken}
	kc.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "envtest"}
	kc.CurrentContext = "envtest"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }
