package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/testenv"
)

func TestSamplesAreAcceptedAsShipped(t *testing.T) {
	p := cluster(t)
	root := testenv.RepoRoot()

	t.Run("the ProfilingConfig samples are created, strictly decoded", func(t *testing.T) {
		paths, err := filepath.Glob(filepath.Join(root, "config", "samples", "*.yaml"))
		if err != nil || len(paths) < 2 {
			t.Fatalf("want a scheduled and a threshold sample in config/samples, found %v (%v)", paths, err)
		}
		kinds := map[string]bool{}
		for _, path := range paths {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decodeYAML(bytes.NewReader(raw))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			for _, o := range objs {
				createNamespace(t, p.c, o.GetNamespace())
				spec, _ := o.Object["spec"].(map[string]any)
				switch {
				case spec["thresholds"] != nil:
					kinds["threshold"] = true
				case spec["onDemand"] != nil:
					kinds["scheduled"] = true
				}
			}
			if err := createAll(t.Context(), p.c, objs); err != nil {
				t.Errorf("%s: %v", filepath.Base(path), err)
			}
		}
		if !kinds["threshold"] || !kinds["scheduled"] {
			t.Errorf("samples cover %v, want a threshold and a scheduled ProfilingConfig", kinds)
		}
	})

	t.Run("the agent's configs parse: the sample and every key of the shipped ConfigMap", func(t *testing.T) {
		paths, err := filepath.Glob(filepath.Join(root, "config", "samples", "agent", "*.yaml"))
		if err != nil || len(paths) == 0 {
			t.Fatalf("no agent config sample in config/samples/agent: %v", err)
		}
		for _, path := range paths {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := collection.ParseFile(path, raw); err != nil {
				t.Errorf("%v", err)
			}
		}
		cm := convert[corev1.ConfigMap](t, find(t, p.objs, "ConfigMap", "kprof-agent-configs"))
		if len(cm.Data) == 0 {
			t.Fatal("ConfigMap kprof-agent-configs is empty")
		}
		for key, data := range cm.Data {
			if ext := filepath.Ext(key); ext != ".yaml" && ext != ".yml" && ext != ".json" {
				t.Errorf("key %s: the agent reads only .yaml, .yml and .json files", key)
			}
			c, err := collection.ParseFile(key, []byte(data))
			if err != nil {
				t.Errorf("%v", err)
				continue
			}
			if c.Event != "cpu-clock" {
				t.Errorf("%s samples %q, want cpu-clock (the event every machine has)", key, c.Event)
			}
		}
	})

	t.Run("the sample app manifest is created and annotated for kprof", func(t *testing.T) {
		raw, err := os.ReadFile(filepath.Join(root, "examples", "sample-app", "deploy.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeYAML(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		var rest []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "Namespace" {
				createNamespace(t, p.c, o.GetName()) // the samples above may have made it
				continue
			}
			rest = append(rest, o)
		}
		if err := createAll(t.Context(), p.c, rest); err != nil {
			t.Fatal(err)
		}
		dep := convert[appsv1.Deployment](t, find(t, objs, "Deployment", "sample-app"))
		ann := dep.Spec.Template.Annotations
		if ann["profiling.io/enabled"] != "true" || ann["profiling.io/port"] == "" || ann["profiling.io/path"] == "" {
			t.Errorf("pod template annotations = %v, want profiling.io/enabled, port and path", ann)
		}
		c := dep.Spec.Template.Spec.Containers[0]
		if !strings.HasPrefix(c.Image, "ghcr.io/kprof/sample-app") {
			t.Errorf("image %s, want ghcr.io/kprof/sample-app", c.Image)
		}
		if port := ann["profiling.io/port"]; !hasPortNamed(c, port) {
			t.Errorf("annotated port %s is not a container port", port)
		}
	})
}

func hasPortNamed(c corev1.Container, port string) bool {
	for _, p := range c.Ports {
		if strconv.Itoa(int(p.ContainerPort)) == port {
			return true
		}
	}
	return false
}
