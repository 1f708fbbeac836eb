package operator_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// The suite's control plane has no metrics.k8s.io: like a cluster without metrics-server.
func TestWithoutMetricsServerThresholdsReportItAndTheScheduleGoesOn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const ns = "no-metrics"
	createNamespace(t, ns)
	port := startSampleApp(t, "127.0.0.71")
	createPod(t, ns, podSpec{name: "api-0", annotated: true, ip: "127.0.0.71", port: port, ready: true})
	pc := &profilingv1alpha1.ProfilingConfig{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "both"},
		Spec: profilingv1alpha1.ProfilingConfigSpec{
			Thresholds:   &profilingv1alpha1.Thresholds{CheckIntervalSeconds: 10},
			OnDemand:     onDemand(30),
			ProfileTypes: []profilingv1alpha1.ProfileType{"heap"},
		},
	}
	if err := k8sClient.Create(ctx, pc); err != nil {
		t.Fatal(err)
	}
	t.Run("the MetricsAvailable condition is False with reason MetricsUnavailable", func(t *testing.T) {
		eventually(t, 60*time.Second, "MetricsAvailable False", func() error {
			got := getConfig(t, client.ObjectKeyFromObject(pc))
			c := meta.FindStatusCondition(got.Status.Conditions, profilingv1alpha1.ConditionMetricsAvailable)
			if c == nil || c.Status != metav1.ConditionFalse || c.Reason != "MetricsUnavailable" || !strings.Contains(c.Message, "metrics.k8s.io") {
				return fmt.Errorf("MetricsAvailable = %+v", c)
			}
			return nil
		})
		if n := countEvents(ctx, ns, "ProfilingConfig", "both", "MetricsUnavailable"); n == 0 {
			t.Error("no MetricsUnavailable event on the config")
		}
	})
	t.Run("scheduled captures go on", func(t *testing.T) {
		eventually(t, 60*time.Second, "a scheduled capture", func() error {
			got := getConfig(t, client.ObjectKeyFromObject(pc))
			if got.Status.TotalProfiles < 1 {
				return fmt.Errorf("totalProfiles = %d", got.Status.TotalProfiles)
			}
			return nil
		})
	})
}
