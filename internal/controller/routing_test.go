package controller

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// recordingWatcher records what the reconciler hands the metrics-server watcher.
type recordingWatcher struct {
	synced  map[string][]string // group → pod names
	removed []string
}

func (w *recordingWatcher) Sync(group string, _ threshold.Policy, targets []threshold.Target) {
	var names []string
	for _, t := range targets {
		names = append(names, t.Pod.Name)
	}
	slices.Sort(names)
	w.synced[group] = names
}

func (w *recordingWatcher) Remove(group string) { w.removed = append(w.removed, group) }

func TestThresholdSourceRoutesPodsBetweenTheAgentAndMetricsServer(t *testing.T) {
	agent := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kprof-system", Name: "agent-a", Labels: map[string]string{"app.kubernetes.io/name": "kprof", "app.kubernetes.io/component": "agent"}},
		Spec:       corev1.PodSpec{NodeName: "node-a"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1",
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
	notReady := agent.DeepCopy()
	notReady.Name, notReady.Spec.NodeName = "agent-c", "node-c"
	notReady.Status.Conditions[0].Status = corev1.ConditionFalse
	cl := fake.NewClientBuilder().WithScheme(clientgoscheme.Scheme).WithObjects(agent, notReady).Build()
	sel, _ := labels.Parse(DefaultAgentSelector)
	pod := func(name, node string) selectedPod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, UID: types.UID("uid-" + name)}, Spec: corev1.PodSpec{NodeName: node}}
		sp := selectedPod{pod: p}
		sp.target.ID = string(p.UID)
		return sp
	}
	selected := []selectedPod{pod("on-agent-node", "node-a"), pod("on-plain-node", "node-b"), pod("on-unready-agent-node", "node-c")}
	tests := []struct {
		source     profilingv1alpha1.ThresholdSource
		wantSynced []string // nil: removed from the watcher
	}{
		{profilingv1alpha1.SourceMetricsServer, []string{"on-agent-node", "on-plain-node", "on-unready-agent-node"}},
		{profilingv1alpha1.SourceAuto, []string{"on-plain-node", "on-unready-agent-node"}},
		{"", []string{"on-plain-node", "on-unready-agent-node"}},
		{profilingv1alpha1.SourceAgent, nil},
	}
	for _, tt := range tests {
		t.Run("source "+string(tt.source), func(t *testing.T) {
			w := &recordingWatcher{synced: map[string][]string{}}
			r := &ProfilingConfigReconciler{Client: cl, thresholds: w, agents: &Agents{Reader: cl, Namespace: "kprof-system", Selector: sel},
				fb: newTestFeedback(t, nil)}
			pc := &profilingv1alpha1.ProfilingConfig{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "c"},
				Spec: profilingv1alpha1.ProfilingConfigSpec{Thresholds: &profilingv1alpha1.Thresholds{CPUThresholdPercent: 80, Source: tt.source}}}
			m, err := r.syncThresholds(context.Background(), pc, labels.Everything(), selected)
			if err != nil {
				t.Fatal(err)
			}
			if m.watched != (tt.wantSynced != nil) {
				t.Errorf("MetricsAvailable input says watched %v, want %v", m.watched, tt.wantSynced != nil)
			}
			got, synced := w.synced["ns/c"]
			switch {
			case tt.wantSynced == nil && (synced || len(w.removed) != 1):
				t.Errorf("synced %v removed %v, want the group removed", got, w.removed)
			case tt.wantSynced != nil && !slices.Equal(got, tt.wantSynced):
				t.Errorf("the watcher evaluates %v, want %v", got, tt.wantSynced)
			}
		})
	}
}
