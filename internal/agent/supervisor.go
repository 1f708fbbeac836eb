package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/attribute"
	"github.com/kprof/kprof/internal/agent/collection"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/lifecycle"
)

// collectorEnv is what every collector shares.
type collectorEnv struct {
	node, cluster string
	symbolizer    *symbolize.Symbolizer
	labeler       *attribute.Attributor
	logger        *slog.Logger
	exclude       []uint32
	// procRoot and registry reach each collector's unwind table loader.
	procRoot string
	registry prometheus.Registerer
}

// collectorFactory builds, without starting it, the collector of one config.
type collectorFactory func(cc collection.CollectionConfig, env collectorEnv, publish func(*profile.Event)) (lifecycle.Component, error)

type supervisorConfig struct {
	factory collectorFactory
	env     collectorEnv
	publish func(*profile.Event)
	timeout time.Duration
	metrics *metrics
	log     *slog.Logger
}

// supervisor runs one collector per config name, as the config watcher's
// changes say. apply is called one change at a time.
type supervisor struct {
	cfg supervisorConfig

	mu      sync.Mutex
	running map[string]*runningCollector // by name
	failed  map[string]collection.CollectionConfig
	closed  bool
}

type runningCollector struct {
	cfg collection.CollectionConfig
	r   lifecycle.Component
}

func newSupervisor(cfg supervisorConfig) *supervisor {
	return &supervisor{cfg: cfg, running: map[string]*runningCollector{}, failed: map[string]collection.CollectionConfig{}}
}

// apply carries out one change of the config directory.
func (cs *supervisor) apply(ch collection.Change) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return
	}
	defer cs.updateGauge()
	c := ch.Config
	switch ch.Kind {
	case collection.Added:
		cs.start(c)
	case collection.Updated:
		cs.stop(c.Name, "updated")
		cs.start(c)
	case collection.Removed:
		cs.stop(c.Name, "removed")
		delete(cs.failed, c.Name)
	case collection.Rejected:
		args := []any{"err", ch.Err}
		if c.Name != "" {
			args = append(args, "keeping", c.Name, "version", c.Version, "file", c.Source)
		}
		cs.cfg.log.Error("config rejected; the running collector, if any, keeps running", args...)
	default:
		cs.cfg.log.Error("unknown config change", "kind", ch.Kind.String(), "name", c.Name)
	}
}

// start starts the collector of c; a failure is logged and counted.
func (cs *supervisor) start(c collection.CollectionConfig) {
	log := cs.cfg.log.With("config", c.Name, "version", c.Version, "file", c.Source)
	delete(cs.failed, c.Name)
	cs.cfg.metrics.touch(c.Name)
	r, err := cs.cfg.factory(c, cs.cfg.env, cs.cfg.publish)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), cs.cfg.timeout)
		err = r.Start(ctx)
		cancel()
		if err != nil {
			// Release what a half-started collector holds.
			sctx, scancel := context.WithTimeout(context.Background(), cs.cfg.timeout)
			if serr := r.Shutdown(sctx); serr != nil {
				log.Warn("shutting down a collector that failed to start", "err", serr)
			}
			scancel()
		}
	}
	if err != nil {
		cs.failed[c.Name] = c
		cs.cfg.metrics.collectorFailures.Inc()
		log.Error("collector failed to start; other configs keep running", "err", err,
			"event", c.Event, "sample_period", c.SamplePeriod, "frequency", c.Frequency)
		return
	}
	cs.running[c.Name] = &runningCollector{cfg: c, r: r}
	log.Info("collector started", "event", c.Event, "sample_period", c.SamplePeriod,
		"frequency", c.Frequency, "interval", c.Interval)
}

// stop shuts down the collector of name, which flushes its final interval.
func (cs *supervisor) stop(name, why string) {
	rc, ok := cs.running[name]
	if !ok {
		return
	}
	delete(cs.running, name)
	ctx, cancel := context.WithTimeout(context.Background(), cs.cfg.timeout)
	defer cancel()
	log := cs.cfg.log.With("config", name, "version", rc.cfg.Version)
	if err := rc.r.Shutdown(ctx); err != nil {
		log.Error("collector shutdown failed", "reason", why, "err", err)
		return
	}
	log.Info("collector stopped", "reason", why)
}

// shutdown stops every collector, concurrently, until ctx is done. No change
// is applied afterwards.
func (cs *supervisor) shutdown(ctx context.Context) error {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.closed {
		return nil
	}
	cs.closed = true
	var (
		wg   sync.WaitGroup
		emu  sync.Mutex
		errs []error
	)
	for name, rc := range cs.running {
		wg.Go(func() {
			if err := rc.r.Shutdown(ctx); err != nil {
				emu.Lock()
				errs = append(errs, fmt.Errorf("collector %s: shutdown: %w", name, err))
				emu.Unlock()
				return
			}
			cs.cfg.log.Info("collector stopped", "config", name, "version", rc.cfg.Version, "reason", "agent shutdown")
		})
	}
	wg.Wait()
	clear(cs.running)
	clear(cs.failed)
	cs.updateGauge()
	return errors.Join(errs...)
}

// runningNames returns the names of the running collectors, sorted.
func (cs *supervisor) runningNames() []string {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	return slices.Sorted(maps.Keys(cs.running))
}

// updateGauge sets kprof_agent_collectors; cs.mu is held.
func (cs *supervisor) updateGauge() {
	cs.cfg.metrics.collectors.WithLabelValues(stateRunning).Set(float64(len(cs.running)))
	cs.cfg.metrics.collectors.WithLabelValues(stateFailed).Set(float64(len(cs.failed)))
}
