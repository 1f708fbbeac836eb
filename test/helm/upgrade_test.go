package helm

import (
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kprof/kprof/internal/testenv"
)

// TestHelmUpgradeKeepsTheDefaultConfigsStatus installs the chart with its default
// ProfilingConfig into an API server without the CRD, writes the config's status as the
// operator does (counters, a pod's cooldown in lastTriggers), upgrades three times and
// reinstalls after an uninstall: the config is never deleted and recreated (same UID),
// the status survives every step, and upgrades after the one that adopted the config
// apply the spec their values change.
func TestHelmUpgradeKeepsTheDefaultConfigsStatus(t *testing.T) {
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
	kubeconfig := writeKubeconfig(t, env.Config)
	const ns = "helm-upgrade"
	helmOK := func(args ...string) {
		t.Helper()
		args = append(args, "--kubeconfig", kubeconfig)
		out, stderr, err := runHelm(t, args...)
		if err != nil {
			t.Fatalf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
	}
	helmOK("install", release, chartDir, "--namespace", ns, "--create-namespace", "--set", "defaultConfig.enabled=true")
	pc := getProfilingConfig(t, c, ns, "default")
	uid := pc.GetUID()
	if hook := pc.GetAnnotations()["helm.sh/hook"]; hook != "post-install" {
		t.Errorf("on the first install (no CRD yet) the config is created by a hook: helm.sh/hook = %q, want post-install", hook)
	}

	// What the operator writes: counters, a condition, a pod's cooldown.
	trigger := map[string]any{"pod": "api-0", "uid": "4b1c0d7e-0000-4000-8000-000000000001",
		"time": time.Now().UTC().Truncate(time.Second).Format(time.RFC3339), "reason": "cpu 93% of request >= 80%"}
	status := map[string]any{
		"activePods": int64(1), "totalProfiles": int64(42), "totalFailures": int64(3), "totalUploads": int64(40),
		"lastTriggers": []any{trigger},
	}
	if err := unstructured.SetNestedMap(pc.Object, status, "status"); err != nil {
		t.Fatal(err)
	}
	if err := c.Status().Update(t.Context(), pc); err != nil {
		t.Fatalf("write the config's status: %v", err)
	}
	kept := func(t *testing.T, step string, wantTypes []string) {
		t.Helper()
		got := getProfilingConfig(t, c, ns, "default")
		if got.GetUID() != uid {
			t.Errorf("after %s the config has UID %s, it was %s: helm recreated it", step, got.GetUID(), uid)
		}
		for _, f := range []string{"totalProfiles", "totalFailures", "totalUploads"} {
			if v, _, _ := unstructured.NestedInt64(got.Object, "status", f); v != status[f] {
				t.Errorf("after %s status.%s = %d, want %d", step, f, v, status[f])
			}
		}
		triggers, _, _ := unstructured.NestedSlice(got.Object, "status", "lastTriggers")
		if len(triggers) != 1 || triggers[0].(map[string]any)["uid"] != trigger["uid"] || triggers[0].(map[string]any)["time"] != trigger["time"] {
			t.Errorf("after %s status.lastTriggers = %v, want the cooldown of api-0 %v", step, triggers, trigger)
		}
		if types, _, _ := unstructured.NestedStringSlice(got.Object, "spec", "profileTypes"); !slices.Equal(types, wantTypes) {
			t.Errorf("after %s spec.profileTypes = %v, want %v", step, types, wantTypes)
		}
	}

	t.Run("the first upgrade adopts the hook's config as it is: same object, same status", func(t *testing.T) {
		// helm 3 diffs an adopted object against its rendered form: this upgrade's
		// values would not reach it (values.yaml says so), so it keeps the install's.
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true")
		kept(t, "the first upgrade", []string{"cpu", "heap"})
		out, stderr, err := runHelm(t, "get", "manifest", release, "--namespace", ns, "--kubeconfig", kubeconfig)
		if err != nil {
			t.Fatalf("helm get manifest: %v\n%s", err, stderr)
		}
		if !strings.Contains(out, "kind: ProfilingConfig") {
			t.Errorf("after the first upgrade the release's manifest lacks the ProfilingConfig:\n%s", out)
		}
	})
	t.Run("a second upgrade patches it in place", func(t *testing.T) {
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,defaultConfig.profileTypes={heap,goroutine}")
		kept(t, "the second upgrade", []string{"heap", "goroutine"})
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,defaultConfig.profileTypes={heap}")
		kept(t, "a third upgrade", []string{"heap"})
	})
	t.Run("uninstall keeps it and a reinstall adopts it again", func(t *testing.T) {
		helmOK("uninstall", release, "--namespace", ns, "--wait", "--timeout", "1m")
		kept(t, "uninstall", []string{"heap"})
		helmOK("install", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,defaultConfig.profileTypes={goroutine}")
		kept(t, "a reinstall", []string{"heap"}) // adopted as it is, as by the first upgrade
		helmOK("upgrade", release, chartDir, "--namespace", ns, "--set", "defaultConfig.enabled=true,defaultConfig.profileTypes={goroutine,heap}")
		kept(t, "the upgrade after the reinstall", []string{"goroutine", "heap"})
	})
}
