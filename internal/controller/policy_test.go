package controller

import (
	"testing"
	"time"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
)

func TestPolicyForDefaultsTheCPUDurationToFitTheInterval(t *testing.T) {
	tests := []struct {
		name string
		spec profilingv1alpha1.ProfilingConfigSpec
		want time.Duration
	}{
		{name: "the minimum interval of 30 s gets a 22 s CPU profile",
			spec: profilingv1alpha1.ProfilingConfigSpec{OnDemand: &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 30}}, want: 22 * time.Second},
		{name: "an interval of 60 s keeps the 30 s default",
			spec: profilingv1alpha1.ProfilingConfigSpec{OnDemand: &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 60}}, want: 30 * time.Second},
		{name: "without a schedule the default is 30 s",
			spec: profilingv1alpha1.ProfilingConfigSpec{}, want: 30 * time.Second},
		{name: "a configured length is kept",
			spec: profilingv1alpha1.ProfilingConfigSpec{CPUProfileDurationSeconds: 10, OnDemand: &profilingv1alpha1.OnDemand{Enabled: true, IntervalSeconds: 30}}, want: 10 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := policyFor(&profilingv1alpha1.ProfilingConfig{Spec: tt.spec}, nil)
			if p.CPUDuration != tt.want {
				t.Errorf("CPUDuration = %s, want %s", p.CPUDuration, tt.want)
			}
		})
	}
}
