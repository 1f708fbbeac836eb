package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// DefaultAgentSelector selects the kprof agent's pods.
const DefaultAgentSelector = "app.kubernetes.io/name=kprof,app.kubernetes.io/component=agent"

// Agents finds the kprof agent pods (a namespace and a label selector) in the
// operator's pod cache.
type Agents struct {
	Reader    client.Reader
	Namespace string
	Selector  labels.Selector
}

// Is reports whether pod is an agent pod.
func (a *Agents) Is(pod client.Object) bool {
	return a != nil && pod.GetNamespace() == a.Namespace && a.Selector.Matches(labels.Set(pod.GetLabels()))
}

// OnNode returns a Ready agent pod with an IP on node, nil when there is none.
func (a *Agents) OnNode(ctx context.Context, node string) (*corev1.Pod, error) {
	if a == nil || node == "" {
		return nil, nil
	}
	pods, err := a.list(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pods {
		if pods[i].Spec.NodeName == node && agentReady(&pods[i]) {
			return &pods[i], nil
		}
	}
	return nil, nil
}

// ReadyNodes returns the nodes where a Ready agent pod runs.
func (a *Agents) ReadyNodes(ctx context.Context) (map[string]bool, error) {
	nodes := map[string]bool{}
	if a == nil {
		return nodes, nil
	}
	pods, err := a.list(ctx)
	if err != nil {
		return nil, err
	}
	for i := range pods {
		if agentReady(&pods[i]) {
			nodes[pods[i].Spec.NodeName] = true
		}
	}
	return nodes, nil
}

func (a *Agents) list(ctx context.Context) ([]corev1.Pod, error) {
	var list corev1.PodList
	if err := a.Reader.List(ctx, &list, client.InNamespace(a.Namespace), client.MatchingLabelsSelector{Selector: a.Selector}); err != nil {
		return nil, fmt.Errorf("list agent pods in namespace %s (%s): %w", a.Namespace, a.Selector, err)
	}
	return list.Items, nil
}

func agentReady(pod *corev1.Pod) bool {
	if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" || pod.Spec.NodeName == "" {
		return false
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
