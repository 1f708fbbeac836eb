// Package helm tests the Helm chart charts/kprof with a real helm binary and a real
// kube-apiserver (envtest): lint, rendering, the values schema, the generated CRD and RBAC
// parts (hack/gen-chart.sh), and what the rendered objects look like to the API server.
//
// helm comes from hack/install-tools.sh (cached in $KPROF_CACHE/bin); kube-apiserver and etcd
// from the same script ($KUBEBUILDER_ASSETS). A missing binary fails the test, naming the script.
package helm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/kprof/kprof/internal/testenv"
)

const (
	release   = "kprof"
	namespace = "kprof-system"
	// helmVersion is the helm hack/install-tools.sh installs.
	helmVersion = "v3.22.0"
	installHint = "run hack/install-tools.sh (helm: hack/install-go-tool.sh helm helm.sh/helm/v3/cmd/helm@" + helmVersion + ")"
)

var (
	repoRoot = testenv.RepoRoot()
	chartDir = filepath.Join(repoRoot, "charts", "kprof")
)

// valueSet is a set of values the chart is linted, rendered and installed with.
type valueSet struct {
	name string
	// file in testdata/, "" for the chart's defaults.
	file string
}

// valueSets are the ones every test below goes through.
var valueSets = []valueSet{
	{"the default values", ""},
	{"the agent with every consumer", "agent-consumers.yaml"},
	{"a default ProfilingConfig storing in S3", "default-config-s3.yaml"},
	{"a default ProfilingConfig of CPU and heap every 30 s", "default-config-seed.yaml"},
}

// everyOption turns on what valueSets leave off (port-forward, persistence, ServiceMonitor, ...);
// it is linted and rendered, not created (envtest has no ServiceMonitor CRD).
var everyOption = valueSet{"every option", "every-option.yaml"}

func (v valueSet) args() []string {
	if v.file == "" {
		return nil
	}
	return []string{"--values", filepath.Join("testdata", v.file)}
}

// helmBinary returns the helm hack/install-tools.sh installs, failing the test when it is missing.
func helmBinary(t *testing.T) string {
	t.Helper()
	cache := os.Getenv("KPROF_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatalf("home directory: %v", err)
		}
		cache = filepath.Join(home, ".cache", "kprof")
	}
	path := filepath.Join(cache, "bin", "helm")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("helm not found at %s: %v; %s", path, err, installHint)
	}
	return path
}

// runHelm runs helm with its config, cache and data in a temporary directory, so that nothing of
// the machine's helm setup (repositories, plugins) plays a part.
func runHelm(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	home := t.TempDir()
	cmd := exec.CommandContext(ctx, helmBinary(t), args...)
	cmd.Dir = filepath.Join(repoRoot, "test", "helm")
	cmd.Env = append(os.Environ(),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// templateArgs renders the chart as release kprof in kprof-system. helm built by go install
// assumes Kubernetes v1.20 without a cluster, below the chart's kubeVersion: say which.
func templateArgs(extra ...string) []string {
	return append([]string{"template", release, chartDir, "--namespace", namespace, "--kube-version", testenv.K8sVersion}, extra...)
}

// render runs helm template and returns the objects, in helm's order.
func render(t *testing.T, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	out, stderr, err := runHelm(t, templateArgs(extra...)...)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(extra, " "), err, stderr)
	}
	objs, err := decodeObjects(out)
	if err != nil {
		t.Fatalf("helm template %s: %v\n%s", strings.Join(extra, " "), err, out)
	}
	return objs
}

func decodeObjects(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

// find returns the object of that kind and name, failing the test when there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %s among the rendered objects %v", kind, name, names(objs))
	return nil
}

func has(objs []*unstructured.Unstructured, kind, name string) bool {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return true
		}
	}
	return false
}

func names(objs []*unstructured.Unstructured) []string {
	s := make([]string, len(objs))
	for i, o := range objs {
		s[i] = o.GetKind() + "/" + o.GetName()
	}
	return s
}

// convert turns an unstructured object into a typed one.
func convert[T any](t *testing.T, o *unstructured.Unstructured) *T {
	t.Helper()
	var v T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, &v, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return &v
}
