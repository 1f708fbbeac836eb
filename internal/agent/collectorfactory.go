package agent

import (
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/collector"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/lifecycle"
)

// newCollector is the agent's collectorFactory: it builds the collector of one
// config for the supervisor. It opens the BPF sampler, so its errors name a
// missing capability or PMU.
func newCollector(cc collection.CollectionConfig, env collectorEnv, publish func(*profile.Event)) (lifecycle.Component, error) {
	return collector.New(collector.Config{
		Collection:  cc,
		Node:        env.node,
		Cluster:     env.cluster,
		Symbolizer:  env.symbolizer,
		Labeler:     env.labeler,
		Publish:     publish,
		Logger:      env.logger,
		ExcludePIDs: env.exclude,
		ProcRoot:    env.procRoot,
		Registerer:  env.registry,
	})
}
