package agent

import (
	"fmt"
	"log/slog"

	"github.com/kprof/kprof/internal/agent/consumer/datadog"
	"github.com/kprof/kprof/internal/agent/consumer/debug"
	"github.com/kprof/kprof/internal/agent/consumer/otlp"
	"github.com/kprof/kprof/internal/agent/consumer/perfdata"
	"github.com/kprof/kprof/internal/agent/consumer/pprof"
	"github.com/kprof/kprof/internal/agent/router"
)

// consumerFactory is one profile consumer the agent builds when its Config
// enables it. A new consumer is one more row of consumerFactories.
type consumerFactory struct {
	name    string // in errors: "agent: <name> consumer: ..."
	enabled func(*Config) bool
	// build makes the consumer; base is the agent's logger, for a consumer
	// whose config has none.
	build func(cfg *Config, base *slog.Logger) (router.Consumer, error)
}

// consumerFactories are the configurable consumers, in the order they are
// registered with the router.
var consumerFactories = []consumerFactory{
	{
		name:    "perf.data",
		enabled: func(c *Config) bool { return c.EnablePerfData },
		build: func(cfg *Config, _ *slog.Logger) (router.Consumer, error) {
			pc, err := perfdata.New(perfdata.Config{Dir: cfg.PerfDataPath,
				MaxFiles: cfg.PerfDataMaxFiles, MaxTotalBytes: cfg.PerfDataMaxBytes})
			if err != nil {
				return nil, err
			}
			return pc, nil
		},
	},
	{
		name:    "pprof files",
		enabled: func(c *Config) bool { return c.EnablePprofFiles },
		build: func(cfg *Config, _ *slog.Logger) (router.Consumer, error) {
			pf, err := pprof.NewFiles(pprof.FilesConfig{Dir: cfg.PprofFilesPath})
			if err != nil {
				return nil, err
			}
			return pf, nil
		},
	},
	{
		name:    "Datadog",
		enabled: func(c *Config) bool { return c.EnableDatadog },
		build: func(cfg *Config, base *slog.Logger) (router.Consumer, error) {
			dcfg := cfg.Datadog
			if dcfg.Logger == nil {
				dcfg.Logger = base.With("logger", "datadog")
			}
			dd, err := datadog.New(dcfg)
			if err != nil {
				return nil, err
			}
			return dd, nil
		},
	},
	{
		name:    "OTLP profiles",
		enabled: func(c *Config) bool { return c.EnableOTLP },
		build: func(cfg *Config, base *slog.Logger) (router.Consumer, error) {
			ocfg := cfg.OTLP
			if ocfg.Logger == nil {
				ocfg.Logger = base.With("logger", "otlp")
			}
			op, err := otlp.NewProfiles(ocfg)
			if err != nil {
				return nil, err
			}
			return op, nil
		},
	},
}

// registerConsumers builds the profile consumers and registers them with the
// router, in this order: the debug consumer, cfg.Consumers, the configurable
// ones of consumerFactories, the flight recorder (kept in a.recorder).
func (a *Agent) registerConsumers(cfg Config, base *slog.Logger) error {
	var consumers []router.Consumer
	if cfg.EnableDebug {
		dc, err := debug.New(cfg.DebugOut)
		if err != nil {
			return fmt.Errorf("agent: %w", err)
		}
		consumers = append(consumers, dc)
	}
	consumers = append(consumers, cfg.Consumers...)
	for _, f := range consumerFactories {
		if !f.enabled(&cfg) {
			continue
		}
		c, err := f.build(&cfg, base)
		if err != nil {
			return fmt.Errorf("agent: %s consumer: %w", f.name, err)
		}
		consumers = append(consumers, c)
	}
	var err error
	if a.recorder, err = newRecorder(cfg); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	if a.recorder != nil {
		consumers = append(consumers, a.recorder)
	}
	for _, c := range consumers {
		if err := a.router.Register(c); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	return nil
}
