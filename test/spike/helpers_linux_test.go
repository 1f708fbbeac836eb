//go:build linux

package spike

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/testenv"
)

// waitMetricsServer waits until metrics.k8s.io reports pod ns/name.
func (s *stack) waitMetricsServer(t testing.TB, ns, name string) {
	t.Helper()
	testenv.Eventually(t, 2*time.Minute, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err := s.c.PodMetrics(ctx, ns, name)
		return err == nil, fmt.Sprintf("metrics of %s/%s: %v", ns, name, err)
	})
}

// waitCaptures waits until pod has at least n ProfileCaptures, and fails unless it has
// exactly n then; they are returned.
func (s *stack) waitCaptures(t testing.TB, ns, pod string, n int, timeout time.Duration) []profilingv1alpha1.ProfileCapture {
	t.Helper()
	var got []profilingv1alpha1.ProfileCapture
	testenv.Eventually(t, timeout, func() (bool, string) {
		got = s.captures(t, ns, pod)
		return len(got) >= n, fmt.Sprintf("%d ProfileCaptures of %s/%s, want %d", len(got), ns, pod, n)
	})
	if len(got) != n {
		t.Fatalf("%d ProfileCaptures of %s/%s, want %d", len(got), ns, pod, n)
	}
	return got
}

// requestCapture creates a user's ProfileCapture of pod: cpu for 2 s.
func (s *stack) requestCapture(t testing.TB, ns, pod string, ttl *int32) *profilingv1alpha1.ProfileCapture {
	t.Helper()
	pc := &profilingv1alpha1.ProfileCapture{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: pod + "-"},
		Spec: profilingv1alpha1.ProfileCaptureSpec{
			Pod: pod, ProfileTypes: []profilingv1alpha1.ProfileType{"cpu"}, CPUDurationSeconds: 2,
			Reason: "e2e", Requester: "test", TTLSecondsAfterFinished: ttl,
		},
	}
	s.create(t, pc)
	return pc
}

// thresholdCapture creates a Threshold capture of pod as an agent would, crossing now.
func (s *stack) thresholdCapture(t testing.TB, ns, pod string) *profilingv1alpha1.ProfileCapture {
	t.Helper()
	pc := &profilingv1alpha1.ProfileCapture{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: pod + "-"},
		Spec: profilingv1alpha1.ProfileCaptureSpec{
			Pod: pod, Trigger: profilingv1alpha1.TriggerThreshold, Reason: "cpu 500% of request ≥ 80%",
			ProfilingConfig: &profilingv1alpha1.ProfilingConfigReference{Namespace: ns, Name: ns},
			Requester:       "kprof-agent/" + agentNode,
			Threshold: &profilingv1alpha1.ThresholdCrossing{
				Source: profilingv1alpha1.SourceAgent, Resource: "cpu", Container: "main", CrossedAt: metav1.NowMicro(),
			},
		},
	}
	s.create(t, pc)
	return pc
}

func (s *stack) create(t testing.TB, pc *profilingv1alpha1.ProfileCapture) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.cl.Create(ctx, pc); err != nil {
		t.Fatalf("create ProfileCapture of %s/%s: %v", pc.Namespace, pc.Spec.Pod, err)
	}
}

// counter sums the values of metric name with these labels in reg.
func counter(t testing.TB, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			switch {
			case m.GetCounter() != nil:
				sum += m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				sum += m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

func ftoa(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
func itoa(i int) string     { return strconv.Itoa(i) }
