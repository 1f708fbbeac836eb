package nodethreshold

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/threshold"
)

// policy is what the agent evaluates of one ProfilingConfig.
type policy struct {
	key       string // namespace/name
	ref       profilingv1alpha1.ProfilingConfigReference
	namespace string // whose pods it selects
	selector  labels.Selector
	rule      threshold.Rule
	// lastTriggers by pod UID, from status: the operator's cooldown.
	lastTriggers map[types.UID]time.Time
}

// compiled caches a config's policy by resourceVersion.
type compiled struct {
	resourceVersion string
	policy          *policy // nil: not evaluated by the agent
	err             error   // why the config cannot be evaluated (reported once)
}

// agentEvaluates reports whether the agent evaluates pc's thresholds: enabled, with
// source agent, auto or empty (design: auto means the agent where one runs).
func agentEvaluates(pc *profilingv1alpha1.ProfilingConfig) bool {
	if !threshold.ThresholdsEnabled(pc) {
		return false
	}
	switch pc.Spec.Thresholds.Source {
	case "", profilingv1alpha1.SourceAgent, profilingv1alpha1.SourceAuto:
		return true
	}
	return false
}

// compile turns pc into a policy; nil without error when the agent does not evaluate
// it. The operator's rules: selector namespace (empty: the config's), label selector,
// Rule from the thresholds.
func compile(pc *profilingv1alpha1.ProfilingConfig) (*policy, error) {
	if !agentEvaluates(pc) {
		return nil, nil
	}
	key := pc.Namespace + "/" + pc.Name
	sel := labels.Everything()
	if ls := pc.Spec.Selector.LabelSelector; ls != nil {
		s, err := metav1.LabelSelectorAsSelector(ls)
		if err != nil {
			return nil, fmt.Errorf("ProfilingConfig %s: spec.selector.labelSelector: %w", key, err)
		}
		sel = s
	}
	rule := threshold.RuleFor(pc.Spec.Thresholds)
	if err := rule.Validate(); err != nil {
		return nil, fmt.Errorf("ProfilingConfig %s: spec.thresholds: %w", key, err)
	}
	ns := pc.Spec.Selector.Namespace
	if ns == "" {
		ns = pc.Namespace
	}
	p := &policy{
		key:          key,
		ref:          profilingv1alpha1.ProfilingConfigReference{Namespace: pc.Namespace, Name: pc.Name},
		namespace:    ns,
		selector:     sel,
		rule:         rule,
		lastTriggers: make(map[types.UID]time.Time, len(pc.Status.LastTriggers)),
	}
	for _, tr := range pc.Status.LastTriggers {
		uid := types.UID(tr.UID)
		if tr.Time.After(p.lastTriggers[uid]) {
			p.lastTriggers[uid] = tr.Time.Time
		}
	}
	return p, nil
}

// selects reports whether p selects pod (the caller checked podtarget.Select).
func (p *policy) selects(pod *corev1.Pod) bool {
	return pod.Namespace == p.namespace && p.selector.Matches(labels.Set(pod.Labels))
}

// policies compiles the configs, reusing what did not change, and returns the policies
// sorted by key and the configs that cannot be evaluated, newly seen (to report once).
func (t *Thresholds) policies(configs []*profilingv1alpha1.ProfilingConfig) ([]*policy, []error) {
	var (
		out    []*policy
		errs   []error
		exists = make(map[types.UID]bool, len(configs))
	)
	for _, pc := range configs {
		exists[pc.UID] = true
		c, ok := t.compiled[pc.UID]
		if !ok || c.resourceVersion != pc.ResourceVersion {
			p, err := compile(pc)
			c = compiled{resourceVersion: pc.ResourceVersion, policy: p, err: err}
			t.compiled[pc.UID] = c
			if err != nil {
				errs = append(errs, err)
			}
		}
		if c.policy != nil {
			out = append(out, c.policy)
		}
	}
	for uid := range t.compiled {
		if !exists[uid] {
			delete(t.compiled, uid)
		}
	}
	slices.SortFunc(out, func(a, b *policy) int { return strings.Compare(a.key, b.key) })
	return out, errs
}
