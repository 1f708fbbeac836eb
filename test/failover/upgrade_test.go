package failover

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	kprofoperator "github.com/kprof/kprof/internal/operator"
	"github.com/kprof/kprof/internal/testenv"
)

// previousCRDCommit is the last release's ProfilingConfig CRD: thresholds with
// cooldowns in status.lastTriggers, before ProfileCapture, thresholds.source and the
// CPU-duration bound of the schedule; it defaulted cpuProfileDurationSeconds to 30.
const previousCRDCommit = "3061d24"

// TestUpgradeFromThePreviousCRDKeepsConfigsWorking creates a ProfilingConfig with the
// previous release's CRD (from git history) and status as that release's operator
// wrote it, applies the current CRDs and runs the current operator: the object is
// served as it was stored (one stored version), the new defaults apply on read, its
// counters go on from where they were, its cooldown stays, and the operator captures
// with it, although a default the old CRD persisted (a 30 s CPU profile) is above
// the bound the current CRD sets for its 35 s interval.
func TestUpgradeFromThePreviousCRDKeepsConfigsWorking(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	old, err := exec.Command("git", "-C", testenv.RepoRoot(), "show", previousCRDCommit+":config/crd/bases/profiling.io_profilingconfigs.yaml").Output()
	if err != nil {
		t.Fatalf("git show %s:config/crd/bases/profiling.io_profilingconfigs.yaml (the test needs the repository's history): %v", previousCRDCommit, err)
	}
	env, err := testenv.Start(func(e *envtest.Environment) { e.CRDDirectoryPaths = nil })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	scheme := kprofoperator.NewScheme()
	if err := apiextensionsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	applyCRD(t, cl, old)

	const ns = "legacy"
	for _, name := range []string{operatorNamespace, ns} {
		if err := cl.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
			t.Fatal(err)
		}
	}
	const ip = "127.0.0.81"
	port := testenv.StartSampleApp(t, net.JoinHostPort(ip, "0"))
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "api-0", Annotations: map[string]string{
			profilingv1alpha1.AnnotationEnabled: "true", profilingv1alpha1.AnnotationPort: strconv.Itoa(port)}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "sample-app:dev"}}},
	}
	if err := cl.Create(ctx, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}
	if err := cl.Status().Update(ctx, pod); err != nil {
		t.Fatal(err)
	}

	// What a user wrote with the previous release, and what its operator wrote to status.
	pc := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "profiling.io/v1alpha1", "kind": "ProfilingConfig",
		"metadata": map[string]any{"namespace": ns, "name": "legacy"},
		"spec": map[string]any{
			"onDemand":     map[string]any{"enabled": true, "intervalSeconds": int64(35)},
			"profileTypes": []any{"cpu", "heap"},
			"thresholds":   map[string]any{"enabled": true, "cpuThresholdPercent": int64(80), "cooldownSeconds": int64(300)},
		},
	}}
	if err := cl.Create(ctx, pc); err != nil {
		t.Fatalf("create a ProfilingConfig with the previous CRD: %v", err)
	}
	if d, _, _ := unstructured.NestedInt64(pc.Object, "spec", "cpuProfileDurationSeconds"); d != 30 {
		t.Fatalf("the previous CRD stored cpuProfileDurationSeconds %d, want its default 30", d)
	}
	trigger := map[string]any{"pod": "api-0", "uid": string(pod.UID), "time": time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
		"reason": "cpu 93% of request >= 80%"}
	if err := unstructured.SetNestedMap(pc.Object, map[string]any{
		"activePods": int64(1), "totalProfiles": int64(5), "totalFailures": int64(1), "totalUploads": int64(0),
		"lastTriggers": []any{trigger},
	}, "status"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Status().Update(ctx, pc); err != nil {
		t.Fatalf("write status with the previous CRD: %v", err)
	}

	for _, f := range []string{"profiling.io_profilingconfigs.yaml", "profiling.io_profilecaptures.yaml"} {
		cur, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "crd", "bases", f))
		if err != nil {
			t.Fatal(err)
		}
		applyCRD(t, cl, cur)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := cl.Get(ctx, client.ObjectKey{Name: "profilingconfigs.profiling.io"}, &crd); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(crd.Status.StoredVersions, []string{"v1alpha1"}) {
		t.Errorf("storedVersions = %v after the upgrade, want [v1alpha1] (no migration needed)", crd.Status.StoredVersions)
	}

	o := newOperator(t, "a", writeKubeconfig(t, env.Config))
	o.start(t)
	var got profilingv1alpha1.ProfilingConfig
	testenv.Eventually(t, 3*time.Minute, func() (bool, string) {
		if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "legacy"}, &got); err != nil {
			return false, err.Error()
		}
		if ready := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionReady); ready == nil || ready.Status != metav1.ConditionTrue {
			return false, fmt.Sprintf("Ready = %+v", ready)
		}
		stored := o.stored(t)
		if len(stored) < 2 {
			return false, fmt.Sprintf("%d profiles stored", len(stored))
		}
		if got.Status.TotalProfiles != 5+int64(len(stored)) {
			return false, fmt.Sprintf("totalProfiles = %d, want the previous 5 + %d stored", got.Status.TotalProfiles, len(stored))
		}
		return true, ""
	})
	t.Run("the previous release's values are read as they were, new defaults apply", func(t *testing.T) {
		if got.Spec.CPUProfileDurationSeconds != 30 || got.Spec.OnDemand.IntervalSeconds != 35 {
			t.Errorf("spec = %+v", got.Spec)
		}
		if got.Spec.Thresholds == nil || got.Spec.Thresholds.Source != profilingv1alpha1.SourceAuto {
			t.Errorf("spec.thresholds = %+v, want source defaulted to auto", got.Spec.Thresholds)
		}
		if got.Status.TotalFailures != 1 {
			t.Errorf("totalFailures = %d, want the previous 1 (no capture failed since)", got.Status.TotalFailures)
		}
	})
	t.Run("the pod's cooldown from the previous release stays", func(t *testing.T) {
		if len(got.Status.LastTriggers) != 1 || got.Status.LastTriggers[0].UID != string(pod.UID) ||
			got.Status.LastTriggers[0].Time.UTC().Format(time.RFC3339) != trigger["time"] {
			t.Errorf("status.lastTriggers = %+v, want the previous release's %v", got.Status.LastTriggers, trigger)
		}
	})
	t.Run("the config can still be edited", func(t *testing.T) {
		// Its stored cpuProfileDurationSeconds (30) is above today's bound for a 35 s
		// interval (26): validation ratcheting lets edits that leave it alone through.
		edit := func(change func(*profilingv1alpha1.ProfilingConfig)) error {
			// The operator writes status meanwhile: retry on its conflicts.
			return retry.RetryOnConflict(retry.DefaultRetry, func() error {
				var cur profilingv1alpha1.ProfilingConfig
				if err := cl.Get(ctx, client.ObjectKey{Namespace: ns, Name: "legacy"}, &cur); err != nil {
					return err
				}
				change(&cur)
				return cl.Update(ctx, &cur)
			})
		}
		if err := edit(func(pc *profilingv1alpha1.ProfilingConfig) {
			pc.Labels = map[string]string{"team": "shop"}
			pc.Spec.Thresholds.CooldownSeconds = 600
		}); err != nil {
			t.Fatalf("update of a config written with the previous CRD: %v", err)
		}
		// A new pair must meet today's bound (27 at 36 s).
		err := edit(func(pc *profilingv1alpha1.ProfilingConfig) { pc.Spec.OnDemand.IntervalSeconds = 36 })
		if err == nil || !strings.Contains(err.Error(), "cpuProfileDurationSeconds must be at most") {
			t.Errorf("changing the interval of a config whose CPU profile is above the bound: %v, want the CRD's refusal", err)
		}
	})
}

// applyCRD creates the CRD in manifest, or updates it to it, and waits until it is established.
func applyCRD(t *testing.T, cl client.Client, manifest []byte) {
	t.Helper()
	ctx := context.Background()
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(manifest, &crd); err != nil {
		t.Fatalf("decode CRD: %v", err)
	}
	var cur apiextensionsv1.CustomResourceDefinition
	err := cl.Get(ctx, client.ObjectKey{Name: crd.Name}, &cur)
	switch {
	case err == nil:
		crd.ResourceVersion = cur.ResourceVersion
		err = cl.Update(ctx, &crd)
	case client.IgnoreNotFound(err) == nil:
		err = cl.Create(ctx, &crd)
	}
	if err != nil {
		t.Fatalf("apply CRD %s: %v", crd.Name, err)
	}
	testenv.Eventually(t, 30*time.Second, func() (bool, string) {
		if err := cl.Get(ctx, client.ObjectKey{Name: crd.Name}, &cur); err != nil {
			return false, err.Error()
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, ""
			}
		}
		return false, fmt.Sprintf("CRD %s not established", crd.Name)
	})
}
