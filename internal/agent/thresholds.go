package agent

import (
	"fmt"

	"k8s.io/client-go/rest"

	"github.com/kprof/kprof/internal/agent/nodethreshold"
	"github.com/kprof/kprof/internal/agent/profile"
)

// publishReading hands a usage reading to the node thresholds (evaluated at once,
// creates in the background) and the metrics consumers.
func (a *Agent) publishReading(m *profile.Metrics) {
	if a.thresholds != nil {
		a.thresholds.Observe(m)
	}
	if a.metricsRouter != nil {
		a.metricsRouter.Publish(m)
	}
}

// buildThresholds builds the node thresholds when asked for and a cluster is configured.
func (a *Agent) buildThresholds(cfg Config, rc *rest.Config) error {
	if !cfg.NodeThresholds {
		return nil
	}
	if rc == nil {
		a.log.Info("node thresholds off: they need a cluster (--kubeconfig, or running in a pod)")
		return nil
	}
	// The flight recorder keeps a crossing pod's samples from crossing − window on
	// until the operator fetched them.
	var pinner nodethreshold.Pinner
	if a.recorder != nil {
		pinner = a.recorder
	}
	var err error
	a.thresholds, err = nodethreshold.New(nodethreshold.Config{
		NodeName: cfg.NodeName,
		REST:     rc,
		Pods:     a.attributor,
		Pinner:   pinner,
		Window:   cfg.RecorderWindow,
		Logger:   cfg.Logger.With("logger", "nodethreshold"),
		Registry: cfg.Registry,
	})
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	return nil
}
