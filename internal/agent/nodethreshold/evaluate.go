package nodethreshold

import (
	"context"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	profilingv1alpha1 "github.com/kprof/kprof/api/v1alpha1"
	"github.com/kprof/kprof/internal/lifecycle"
	"github.com/kprof/kprof/internal/podtarget"
	"github.com/kprof/kprof/internal/threshold"
)

// state is what the evaluation remembers between readings; guarded by Thresholds.mu.
type state struct {
	rates    *rates
	compiled map[types.UID]compiled
	// created: the captures this agent created, by crossing time, and the end of
	// their cooldown (local suppression while status.lastTriggers has not caught up).
	created map[podKey]cooldown
	// failed: the backoff after failed creates.
	failed   map[podKey]backoff
	inFlight map[podKey]bool
	// reported: the uncomputable problems last reported per pod and config.
	reported threshold.Reported[podKey]
}

type cooldown struct{ at, until time.Time }

type backoff struct {
	failures int
	until    time.Time
}

func newState() state {
	return state{
		rates:    newRates(),
		compiled: map[types.UID]compiled{},
		created:  map[podKey]cooldown{},
		failed:   map[podKey]backoff{},
		inFlight: map[podKey]bool{},
		reported: threshold.Reported[podKey]{},
	}
}

// evaluate applies every policy to every pod of usage (read at now) and starts the
// creates of the crossings that are not suppressed. Called with t.mu held.
func (t *Thresholds) evaluate(now time.Time, usage map[string]*threshold.PodUsage, policies []*policy) {
	evaluated := map[podKey]bool{}
	for _, uid := range slices.Sorted(maps.Keys(usage)) {
		pod := t.cfg.Pods.PodByUID(uid)
		if pod == nil {
			continue
		}
		if _, why, _ := podtarget.Select(pod); why != "" {
			continue // not annotated, not Running and Ready, no IP: the operator skips it too
		}
		for _, p := range policies {
			if !p.selects(pod) {
				continue
			}
			key := podKey{p.key, pod.UID}
			evaluated[key] = true
			t.evaluatePod(now, key, pod, *usage[uid], p)
		}
	}
	t.reported.Retain(evaluated)
	t.metrics.uncomputable.Set(float64(len(t.reported)))
	maps.DeleteFunc(t.created, func(_ podKey, c cooldown) bool { return !c.until.After(now) })
	maps.DeleteFunc(t.failed, func(k podKey, b backoff) bool {
		return !evaluated[k] && !b.until.After(now) // keep a failing pod's count while it is evaluated
	})
}

// evaluatePod evaluates one pod under one policy, with the operator's semantics.
func (t *Thresholds) evaluatePod(now time.Time, key podKey, pod *corev1.Pod, u threshold.PodUsage, p *policy) {
	statusLast := p.lastTriggers[pod.UID]
	last := statusLast
	if c, ok := t.created[key]; ok && c.at.After(last) {
		last = c.at
	}
	d := threshold.Evaluate(pod, u, p.rule, last, now)
	t.reportUncomputable(key, pod, p, d.Uncomputable)
	if d.Crossing == nil {
		return
	}
	c := *d.Crossing
	t.metrics.crossings.WithLabelValues(c.Resource).Inc()
	reason := ""
	switch {
	case d.InCooldown && !statusLast.IsZero() && statusLast.Add(p.rule.Cooldown).After(now):
		reason = SuppressedCooldown
	case d.InCooldown:
		reason = SuppressedRecent
	case t.inFlight[key]:
		reason = SuppressedInFlight
	case t.failed[key].until.After(now):
		reason = SuppressedBackoff
	case len(t.inFlight) >= t.cfg.MaxInFlight:
		reason = SuppressedBusy
	}
	if reason != "" {
		t.metrics.suppress(reason)
		t.log.Debug("threshold crossed, no capture", "pod", pod.Namespace+"/"+pod.Name, "config", p.key,
			"reason", c.Reason(), "suppressed", reason, "cooldown_until", d.CooldownUntil)
		return
	}
	t.startCreate(now, key, pod, p, c)
}

// startCreate pins the pod's recorded data and creates its ProfileCapture in the
// background. Called with t.mu held.
func (t *Thresholds) startCreate(crossedAt time.Time, key podKey, pod *corev1.Pod, p *policy, c threshold.Crossing) {
	pc := newCapture(t.cfg.NodeName, pod, p.ref, c, crossedAt)
	if t.cfg.Pinner != nil {
		t.cfg.Pinner.Pin(pod.Namespace, pod.Name, crossedAt.Add(-t.cfg.Window))
	}
	t.inFlight[key] = true
	t.wg.Add(1)
	go t.create(key, pc, p.rule.Cooldown, c)
}

// create creates pc and records the outcome for the suppression of the pod's next crossings.
func (t *Thresholds) create(key podKey, pc *profilingv1alpha1.ProfileCapture, cool time.Duration, c threshold.Crossing) {
	defer t.wg.Done()
	crossedAt := pc.Spec.Threshold.CrossedAt.Time
	log := t.log.With("pod", pc.Namespace+"/"+pc.Spec.Pod, "config", key.config, "reason", pc.Spec.Reason)
	ctx, cancel := context.WithTimeout(t.createCtx, t.cfg.CreateTimeout)
	created, err := t.api.Create(ctx, pc)
	cancel()

	t.mu.Lock()
	defer t.mu.Unlock()
	done := t.cfg.Now()
	delete(t.inFlight, key)
	if err != nil {
		b := t.failed[key]
		b.failures++
		wait := lifecycle.Backoff{Base: t.cfg.InitialBackoff, Max: t.cfg.MaxBackoff}.Nominal(b.failures)
		b.until = later(crossedAt, done).Add(wait)
		t.failed[key] = b
		t.metrics.createFailed(err)
		log.Warn("threshold crossed, creating its ProfileCapture failed", "err", err, "failures", b.failures, "retry_after", wait)
		return
	}
	delete(t.failed, key)
	t.created[key] = cooldown{at: crossedAt, until: crossedAt.Add(cool)}
	t.metrics.captures.WithLabelValues(c.Resource).Inc()
	log.Info("threshold crossed, ProfileCapture created", "capture", created.Name, "resource", c.Resource,
		"container", c.Container, "crossed_at", crossedAt, "latency", done.Sub(crossedAt).Round(time.Millisecond))
}

// reportUncomputable logs the problems of a pod under a config when they differ from
// those last reported; a pod whose problems clear is forgotten, so a recurrence is
// reported again.
func (t *Thresholds) reportUncomputable(key podKey, pod *corev1.Pod, p *policy, problems []string) {
	if !t.reported.Changed(key, problems) {
		return
	}
	t.metrics.uncompReport.Inc()
	t.log.Warn("cannot compute a usage percentage", "pod", pod.Namespace+"/"+pod.Name, "config", p.key, "problems", problems)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
