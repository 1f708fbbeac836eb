package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

const (
	systemNamespace = "kprof-system"
	operatorSA      = "system:serviceaccount:kprof-system:kprof-operator"
	agentSA         = "system:serviceaccount:kprof-system:kprof-agent"
	fieldOwner      = "kprof-deploy-test"
	installHint     = "run hack/install-tools.sh (or make tools)"
)

// saGroups are the groups the API server gives every token of a ServiceAccount in kprof-system.
var saGroups = []string{"system:serviceaccounts", "system:serviceaccounts:" + systemNamespace, "system:authenticated"}

func TestMain(m *testing.M) {
	code := m.Run()
	if err := shared.stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
		code = 1
	}
	os.Exit(code)
}

// controlPlane is one kube-apiserver + etcd for the package, started by the first test that
// needs it, with config/default rendered and created in it (and nothing else of kprof: the
// CRD comes from the rendered manifests, not from envtest).
type controlPlane struct {
	once sync.Once
	err  error
	env  *envtest.Environment
	cfg  *rest.Config
	c    client.Client
	objs []*unstructured.Unstructured // config/default as created
}

var shared controlPlane

func (p *controlPlane) stop() error {
	if p.env == nil {
		return nil
	}
	return p.env.Stop()
}

// cluster returns the shared control plane with config/default applied, or fails t.
func cluster(t *testing.T) *controlPlane {
	t.Helper()
	shared.once.Do(func() { shared.err = shared.start() })
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return &shared
}

func (p *controlPlane) start() error {
	objs, err := kustomizeBuild("config/default")
	if err != nil {
		return err
	}
	dir := testenv.AssetsDir()
	for _, bin := range []string{"kube-apiserver", "etcd"} {
		if _, err := os.Stat(filepath.Join(dir, bin)); err != nil {
			return fmt.Errorf("envtest binary %s not found in %s (%s): %w", bin, dir, installHint, err)
		}
	}
	p.env = &envtest.Environment{BinaryAssetsDirectory: dir}
	if p.cfg, err = p.env.Start(); err != nil {
		p.env = nil
		return fmt.Errorf("start kube-apiserver + etcd from %s: %w", dir, err)
	}
	if p.c, err = client.New(p.cfg, client.Options{Scheme: scheme()}); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := createAll(ctx, p.c, objs); err != nil {
		return fmt.Errorf("create config/default: %w", err)
	}
	p.objs = objs
	return nil
}

func scheme() *runtime.Scheme {
	s := operator.NewScheme()
	utilruntime.Must(apiextensionsv1.AddToScheme(s))
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	return s
}

// kustomizePath is the kustomize binary hack/install-tools.sh installs: $KUSTOMIZE, else
// $KPROF_CACHE/bin/kustomize, else ~/.cache/kprof/bin/kustomize.
func kustomizePath() string {
	if k := os.Getenv("KUSTOMIZE"); k != "" {
		return k
	}
	cache := os.Getenv("KPROF_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "kprof")
	}
	return filepath.Join(cache, "bin", "kustomize")
}

// kustomizeBuild renders dir (relative to the repository root, or absolute) with the real
// kustomize binary and decodes every object.
func kustomizeBuild(dir string) ([]*unstructured.Unstructured, error) {
	bin := kustomizePath()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kustomize not found at %s (%s): %w", bin, installHint, err)
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(testenv.RepoRoot(), dir)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "build", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w\n%s", dir, err, stderr.String())
	}
	return decodeYAML(&stdout)
}

// decodeYAML decodes a multi-document YAML stream, skipping empty documents.
func decodeYAML(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(r, 4096)
	var out []*unstructured.Unstructured
	for {
		var u unstructured.Unstructured
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("decode YAML: %w", err)
		}
		if len(u.Object) > 0 {
			out = append(out, &u)
		}
	}
}

// applyOrder sorts objects as kubectl apply must see them: namespaces, then CRDs, then the rest.
func applyOrder(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	rank := func(u *unstructured.Unstructured) int {
		switch u.GetKind() {
		case "Namespace":
			return 0
		case "CustomResourceDefinition":
			return 1
		}
		return 2
	}
	out := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(out, func(i, j int) bool { return rank(out[i]) < rank(out[j]) })
	return out
}

// createAll creates objs with strict field validation (an unknown or misspelt field is an
// error), waiting for each CRD to be established before the objects after it.
func createAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured) error {
	strict := client.WithFieldValidation(c, metav1.FieldValidationStrict)
	for _, o := range applyOrder(objs) {
		o = o.DeepCopy()
		if err := strict.Create(ctx, o); err != nil {
			return fmt.Errorf("create %s: %w", describe(o), err)
		}
		if o.GetKind() == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, c, o.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

// applyAll server-side applies objs as field owner fieldOwner; dryRun validates them without
// persisting anything.
func applyAll(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, dryRun bool) error {
	for _, o := range applyOrder(objs) {
		opts := []client.ApplyOption{client.FieldOwner(fieldOwner), client.ForceOwnership}
		if dryRun {
			opts = append(opts, client.DryRunAll)
		}
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), opts...); err != nil {
			return fmt.Errorf("apply %s: %w", describe(o), err)
		}
	}
	return nil
}

func waitEstablished(ctx context.Context, c client.Client, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, err
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s not established: %w", name, err)
	}
	return nil
}

func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() != "" {
		return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
	}
	return o.GetKind() + " " + o.GetName()
}

// find returns the one object of kind and name in objs, or fails t.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendered manifests", kind, name)
	return nil
}

// convert decodes u into a typed object, failing t.
func convert[T any](t *testing.T, u *unstructured.Unstructured) *T {
	t.Helper()
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, &out, true); err != nil {
		t.Fatalf("%s: %v", describe(u), err)
	}
	return &out
}

// createNamespace creates a namespace for a test (ignoring one that exists).
func createNamespace(t *testing.T, c client.Client, name string) {
	t.Helper()
	err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}
