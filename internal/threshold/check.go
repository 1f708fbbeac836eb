package threshold

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// candidate is a target whose crossing is outside its cooldown.
type candidate struct {
	target   Target
	crossing Crossing
	sample   time.Time // PodMetrics timestamp
}

// check reads the usage of g's pods once, evaluates every target and triggers
// captures for the crossings outside their cooldown, most severe first, up to
// MaxInFlight outstanding Trigger calls.
func (w *Watcher) check(g *group) {
	start := w.cfg.Now()
	g.mu.Lock()
	p, targets := g.policy, g.targets
	g.mu.Unlock()

	usage, ok := w.readUsage(g, p)
	if !ok {
		return
	}
	detected := w.cfg.Now()
	w.startMostSevere(g, w.candidates(g, p, targets, usage, detected), start, detected)
}

// readUsage reads the usage of the pods of p, reporting a metrics outage and
// its end; ok is false when there is nothing to evaluate.
func (w *Watcher) readUsage(g *group, p Policy) (usage map[string]PodUsage, ok bool) {
	ctx, cancel := context.WithTimeout(g.loopCtx, p.CheckInterval)
	usage, err := w.cfg.Source.PodUsage(ctx, p.Namespace, p.Selector)
	cancel()
	if err != nil {
		if g.loopCtx.Err() != nil {
			return nil, false // removed or shutting down: not a metrics problem
		}
		w.metricsFailed(g, err)
		return nil, false
	}
	w.cfg.Metrics.check(CheckSuccess)
	if g.metricsDown {
		g.metricsDown = false
		g.log.Info("pod metrics available again")
		w.cfg.Reporter.MetricsUnavailable(g.name, nil)
	}
	return usage, true
}

// candidates evaluates every target on its usage and returns those whose
// crossing is outside its cooldown; crossings inside it are counted. It forgets
// the uncomputable reports of pods that are no longer targets.
func (w *Watcher) candidates(g *group, p Policy, targets []Target, usage map[string]PodUsage, detected time.Time) []candidate {
	var (
		candidates []candidate
		inCooldown int
		seen       = make(map[types.UID]bool, len(targets))
	)
	for _, t := range targets {
		pod := t.Pod
		seen[pod.UID] = true
		u := usage[pod.Name]
		if (u.Namespace != "" && u.Namespace != pod.Namespace) || u.Timestamp.Before(pod.CreationTimestamp.Time) {
			u = PodUsage{} // another pod's sample: a namespace mix-up, or a predecessor of the same name
		}
		last := w.cfg.Cooldowns.LastTrigger(g.name, pod.UID)
		g.mu.Lock()
		if r := g.recorded[pod.UID]; r.After(last) {
			last = r
		}
		g.mu.Unlock()

		d := Evaluate(pod, u, p.Rule, last, detected)
		w.reportUncomputable(g, t, d.Uncomputable)
		switch {
		case d.Crossing == nil:
		case d.InCooldown:
			inCooldown++
			g.log.Debug("threshold crossed inside the cooldown", "pod", pod.Namespace+"/"+pod.Name,
				"reason", d.Crossing.Reason(), "cooldownUntil", d.CooldownUntil)
		default:
			candidates = append(candidates, candidate{target: t, crossing: *d.Crossing, sample: u.Timestamp})
		}
	}
	g.reported.Retain(seen)
	w.cfg.Metrics.suppress(SuppressedCooldown, inCooldown)
	return candidates
}

// startMostSevere starts the captures of candidates, most severe first, while g
// has in-flight slots; the others are counted and wait for the next check.
func (w *Watcher) startMostSevere(g *group, candidates []candidate, start, detected time.Time) {
	slices.SortStableFunc(candidates, func(a, b candidate) int {
		if c := cmp.Compare(b.crossing.severity(), a.crossing.severity()); c != 0 {
			return c
		}
		return strings.Compare(a.target.ID, b.target.ID)
	})
	busy := 0
	batch, batched := w.cfg.Cooldowns.(BatchRecorder)
	var reserved []candidate
	for _, c := range candidates {
		if g.loopCtx.Err() != nil {
			for _, r := range reserved {
				g.release(r.target.ID)
			}
			return
		}
		if !g.reserve(c.target.ID, w.cfg.MaxInFlight) {
			busy++
			continue
		}
		if batched {
			reserved = append(reserved, c)
			continue
		}
		w.start(g, c, start, detected, time.Time{})
	}
	if len(reserved) > 0 {
		w.startAll(g, batch, reserved, start, detected)
	}
	w.cfg.Metrics.suppress(SuppressedBusy, busy)
	if busy > 0 {
		g.log.Info("crossing pods deferred to the next check: too many triggers in flight",
			"deferred", busy, "maxInFlight", w.cfg.MaxInFlight)
	}
}

// startAll records the triggers of every candidate of a check in one write, then
// starts their captures. The caller holds each candidate's in-flight slot.
func (w *Watcher) startAll(g *group, store BatchRecorder, cs []candidate, checkStart, detected time.Time) {
	at := w.cfg.Now()
	records := make([]Record, 0, len(cs))
	for _, c := range cs {
		records = append(records, Record{Pod: c.target.Pod, At: at, Reason: c.crossing.Reason()})
	}
	ctx, cancel := context.WithTimeout(g.loopCtx, w.cfg.RecordTimeout)
	err := store.RecordAll(ctx, g.name, records)
	cancel()
	if err != nil {
		for _, c := range cs {
			g.release(c.target.ID)
		}
		if g.loopCtx.Err() == nil {
			w.cfg.Metrics.recordFailed()
			g.log.Error("not triggering the captures: recording the triggers for the cooldown failed", "err", err, "pods", len(cs))
		}
		return
	}
	for _, c := range cs {
		w.start(g, c, checkStart, detected, at)
	}
}

// start records the trigger of c (unless recordedAt says startAll did), then calls
// the Capturer in its own goroutine. The caller holds c's in-flight slot; start
// releases it unless the Trigger call owns it.
func (w *Watcher) start(g *group, c candidate, checkStart, detected, recordedAt time.Time) {
	pod := c.target.Pod
	reason := c.crossing.Reason()
	log := g.log.With("pod", pod.Namespace+"/"+pod.Name, "reason", reason)

	at := recordedAt
	if at.IsZero() {
		at = w.cfg.Now()
		ctx, cancel := context.WithTimeout(g.loopCtx, w.cfg.RecordTimeout)
		err := w.cfg.Cooldowns.Record(ctx, g.name, pod, at, reason)
		cancel()
		if err != nil {
			g.release(c.target.ID)
			if g.loopCtx.Err() == nil {
				w.cfg.Metrics.recordFailed()
				log.Error("not triggering the capture: recording the trigger for the cooldown failed", "err", err)
			}
			return
		}
	}
	g.mu.Lock()
	g.recorded[pod.UID] = at
	g.mu.Unlock()

	called := w.cfg.Now()
	lat := Latency{Decide: called.Sub(checkStart)}
	if !c.sample.IsZero() {
		lat.MetricsAge = max(0, detected.Sub(c.sample))
		lat.Detect = max(0, checkStart.Sub(c.sample))
	}
	w.wg.Add(1) // the loop's own count keeps wg above zero: no race with Shutdown's Wait
	go w.trigger(g, c, at)

	w.cfg.Metrics.triggered(c.crossing.Resource, lat)
	w.cfg.Reporter.Triggered(g.name, pod, c.crossing, lat)
	log.Info("threshold crossed, capture triggered", "metricsAge", lat.MetricsAge, "decide", lat.Decide)
}

// trigger calls the Capturer and frees the target's in-flight slot when it returns.
func (w *Watcher) trigger(g *group, c candidate, at time.Time) {
	defer w.wg.Done()
	defer g.release(c.target.ID)
	if err := w.cfg.Capturer.Trigger(g.trigCtx, g.name, c.target, c.crossing, at); err != nil {
		g.log.Error("triggered capture failed", "err", err, "target", c.target.ID, "reason", c.crossing.Reason())
	}
}

// metricsFailed counts a failed usage read and reports it when the group's
// metrics were available until now.
func (w *Watcher) metricsFailed(g *group, err error) {
	result := CheckFailure
	if IsMetricsUnavailable(err) {
		result = CheckUnavailable
	}
	w.cfg.Metrics.check(result)
	if g.metricsDown {
		g.log.Debug("pod metrics still unavailable", "err", err)
		return
	}
	g.metricsDown = true
	g.log.Error("pod metrics unavailable: threshold triggers paused, scheduled captures go on", "err", err,
		"reason", MetricsErrorReason(err))
	w.cfg.Reporter.MetricsUnavailable(g.name, err)
}

// reportUncomputable reports t's problems when they differ from those last
// reported for the pod; a pod whose problems clear is forgotten, so a
// recurrence is reported again.
func (w *Watcher) reportUncomputable(g *group, t Target, problems []string) {
	uid := t.Pod.UID
	if !g.reported.Changed(uid, problems) {
		return
	}
	g.log.Info("cannot compute a usage percentage", "pod", t.Pod.Namespace+"/"+t.Pod.Name, "problems", problems)
	w.cfg.Reporter.Uncomputable(g.name, t.Pod, slices.Clone(problems))
}
