package agent

import (
	"maps"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/router"
	"github.com/kprof/kprof/internal/promreg"
)

// States of kprof_agent_collectors.
const (
	stateRunning = "running"
	stateFailed  = "failed"
)

// Reasons of kprof_agent_lost_samples_total.
const (
	reasonMapFull = "map_full"
)

// metrics are the agent's own metrics; the router registers its own.
type metrics struct {
	collectors        *prometheus.GaugeVec   // state
	collectorFailures prometheus.Counter     //
	samples           *prometheus.CounterVec // config
	lost              *prometheus.CounterVec // config, reason
	frames            *prometheus.CounterVec // config, method
	stackEnds         *prometheus.CounterVec // config, end

	// Totals over all configs since start, exported as OTLP metrics too.
	start                   time.Time
	samplesTotal, fullTotal atomic.Uint64
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	set := promreg.New(reg, "agent metrics")
	m := &metrics{
		start:             time.Now(),
		collectors:        set.GaugeVec("kprof_agent_collectors", "Collectors by state: running, or failed (the config's collector could not start; it is retried when the config changes).", "state"),
		collectorFailures: set.Counter("kprof_agent_collector_start_failures_total", "Collectors that failed to start (e.g. a hardware event without a PMU, a missing capability)."),
		samples:           set.CounterVec("kprof_agent_samples_total", "Samples published, by collection config.", "config"),
		lost:              set.CounterVec("kprof_agent_lost_samples_total", "Samples lost in the kernel, by collection config and reason: map_full (the count map or the stack map was full).", "config", "reason"),
		frames:            set.CounterVec("kprof_agent_unwound_frames_total", "User frames whose caller the kernel found, by collection config and method: table (an .eh_frame unwind table) or frame_pointer.", "config", "method"),
		stackEnds:         set.CounterVec("kprof_agent_user_stacks_total", "User stacks walked in the kernel, by collection config and how they ended: complete (the outermost frame), no_rule (no table row and no usable frame pointer: the usual end of a frame-pointer walk), read_error (stack memory unreadable), truncated (deeper than 127 frames).", "config", "end"),
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	m.collectors.WithLabelValues(stateRunning).Set(0)
	m.collectors.WithLabelValues(stateFailed).Set(0)
	return m, nil
}

// touch creates the series of a config at 0.
func (m *metrics) touch(name string) {
	m.samples.WithLabelValues(name)
	m.lost.WithLabelValues(name, reasonMapFull)
	for _, method := range []string{"table", "frame_pointer"} {
		m.frames.WithLabelValues(name, method)
	}
	for _, end := range []string{"complete", "no_rule", "read_error", "truncated"} {
		m.stackEnds.WithLabelValues(name, end)
	}
}

// observe counts an event's samples and losses.
func (m *metrics) observe(ev *profile.Event) {
	var n uint64
	for _, s := range ev.Samples {
		n += s.Count
	}
	m.samplesTotal.Add(n)
	m.fullTotal.Add(ev.Stats.MapFullDrops)
	m.samples.WithLabelValues(ev.Config).Add(float64(n))
	m.lost.WithLabelValues(ev.Config, reasonMapFull).Add(float64(ev.Stats.MapFullDrops))
	u := ev.Stats.Unwind
	m.frames.WithLabelValues(ev.Config, "table").Add(float64(u.FramesByTable))
	m.frames.WithLabelValues(ev.Config, "frame_pointer").Add(float64(u.FramesByFramePointer))
	for end, n := range map[string]uint64{"complete": u.Complete, "no_rule": u.NoRule, "read_error": u.ReadError, "truncated": u.Truncated} {
		m.stackEnds.WithLabelValues(ev.Config, end).Add(float64(n))
	}
}

// publish counts ev and hands it to the router.
func (a *Agent) publish(ev *profile.Event) {
	if ev == nil {
		return
	}
	a.metrics.observe(ev)
	a.router.Publish(ev)
}

// counterPoints are the agent's own counters as metric points: samples taken,
// samples lost by reason, and each consumer's events by result (of both
// routers), counted since the agent started.
func (a *Agent) counterPoints(time.Time) []profile.Point {
	m := a.metrics
	counter := func(name, unit string, v uint64, labels map[string]string) profile.Point {
		return profile.Point{Name: name, Kind: profile.Counter, Unit: unit, Value: float64(v), Start: m.start, Labels: labels}
	}
	pts := []profile.Point{
		counter(profile.AgentSamples, "{sample}", m.samplesTotal.Load(), nil),
		counter(profile.AgentLost, "{sample}", m.fullTotal.Load(), map[string]string{"reason": reasonMapFull}),
	}
	stats := a.router.Stats()
	if a.metricsRouter != nil {
		maps.Copy(stats, a.metricsRouter.Stats())
	}
	for _, name := range slices.Sorted(maps.Keys(stats)) {
		st := stats[name]
		for _, r := range []struct {
			result string
			n      uint64
		}{{router.ResultDelivered, st.Delivered}, {router.ResultFailed, st.Failed}, {router.ResultDropped, st.Dropped}} {
			pts = append(pts, counter(profile.AgentConsumerEvents, "{event}", r.n, map[string]string{"consumer": name, "result": r.result}))
		}
	}
	return pts
}
