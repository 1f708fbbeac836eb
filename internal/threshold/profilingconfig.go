package threshold

import (
	"time"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

// RuleFor is the Rule of a ProfilingConfig's thresholds, for every evaluator of them (the
// operator's metrics-server watcher and the node agent), so both read a config alike.
func RuleFor(th *profilingv1alpha1.Thresholds) Rule {
	if th == nil {
		return Rule{}
	}
	return Rule{
		CPUPercent:    th.CPUThresholdPercent,
		MemoryPercent: th.MemoryThresholdPercent,
		Basis:         Basis(th.Basis),
		Containers:    th.Containers,
		Cooldown:      time.Duration(th.CooldownSeconds) * time.Second,
	}
}

// ThresholdsEnabled reports whether pc asks for threshold-triggered captures: thresholds
// set and not disabled.
func ThresholdsEnabled(pc *profilingv1alpha1.ProfilingConfig) bool {
	t := pc.Spec.Thresholds
	return t != nil && (t.Enabled == nil || *t.Enabled)
}
