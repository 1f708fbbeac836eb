package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/kprof/kprof/internal/agent/consumer/pprof"
	"github.com/kprof/kprof/internal/agent/profile"
)

// LabelReason is the label of a profile's trigger reason.
const LabelReason = "reason"

// ErrNotRecorded means the recorder holds nothing of the window asked for.
var ErrNotRecorded = errors.New("not recorded")

// Query returns the pod's samples recorded over [from, to] as one event and
// the window it really covers: the whole intervals of one collection config
// that overlap [from, to] and that the recorder still holds in full for this
// pod (when two time-based configs ran, the one covering more of [from, to]).
// Identical stacks add up across intervals. The event has labels node,
// namespace and pod, its samples pid, comm and container. A pod that used no
// CPU gets an event without samples; a window the recorder holds nothing of is
// ErrNotRecorded. The pod's pins starting at or after from are released: this
// fetch covers them. The event shares frames with the recorder: read only.
func (r *Recorder) Query(namespace, pod string, from, to time.Time) (*profile.Event, Window, error) {
	if !to.After(from) {
		return nil, Window{}, fmt.Errorf("query %s/%s: to %s is not after from %s", namespace, pod, to.Format(time.RFC3339Nano), from.Format(time.RFC3339Nano))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, Window{}, ErrClosed
	}
	r.expireLocked(r.cfg.Now())
	s := &r.store
	ps := s.pods[podKey{namespace, pod}]
	held := func(iv interval) bool { return iv.end.After(s.horizon) } // a pod without state has had nothing since
	if ps != nil {
		held = func(iv interval) bool { return ps.holds(iv, s.horizon) }
	}
	config := bestConfig(s.intervals, held, from, to)
	if config == "" {
		return nil, Window{}, r.notRecorded(namespace, pod, from, to, held)
	}
	w, last := windowOf(s.intervals, config, held, from, to)
	ev := &profile.Event{
		Config:    config,
		EventName: last.eventName,
		Period:    last.period,
		Frequency: last.frequency,
		Start:     w.Start,
		End:       w.End,
		Labels:    map[string]string{profile.LabelNamespace: namespace, profile.LabelPod: pod},
	}
	if r.node != "" {
		ev.Labels[profile.LabelNode] = r.node
	}
	if ps != nil {
		ev.Samples = samplesOf(ps, config, w)
		ps.pins = deletePins(ps.pins, from)
		r.updateGauges()
	}
	return ev, w, nil
}

// bestConfig is the collection config whose held intervals cover most of
// [from, to]; of two covering as much, the finer one (its intervals reach less
// beyond [from, to]), then the first by name. "" when none overlaps.
func bestConfig(intervals []interval, held func(interval) bool, from, to time.Time) string {
	// Per config: how much of [from, to] its intervals cover, and the span they take.
	type cover struct {
		overlap    time.Duration
		start, end time.Time
	}
	covers := map[string]*cover{}
	for _, iv := range intervals {
		if !held(iv) || !iv.start.Before(to) || !iv.end.After(from) {
			continue
		}
		cv := covers[iv.config]
		if cv == nil {
			cv = &cover{start: iv.start, end: iv.end}
			covers[iv.config] = cv
		}
		cv.overlap += minTime(iv.end, to).Sub(maxTime(iv.start, from))
		cv.start, cv.end = minTime(cv.start, iv.start), maxTime(cv.end, iv.end)
	}
	var (
		config string
		best   *cover
	)
	for c, cv := range covers {
		better := best == nil || cv.overlap > best.overlap
		if best != nil && cv.overlap == best.overlap {
			span, bestSpan := cv.end.Sub(cv.start), best.end.Sub(best.start)
			better = span < bestSpan || (span == bestSpan && c < config)
		}
		if better {
			config, best = c, cv
		}
	}
	return config
}

// windowOf is the span of config's held intervals that overlap [from, to], and
// the last of them (whose event and period the query's event carries).
func windowOf(intervals []interval, config string, held func(interval) bool, from, to time.Time) (w Window, last interval) {
	for _, iv := range intervals {
		if iv.config != config || !held(iv) || !iv.start.Before(to) || !iv.end.After(from) {
			continue
		}
		if w.Start.IsZero() || iv.start.Before(w.Start) {
			w.Start = iv.start
		}
		if iv.end.After(w.End) {
			w.End, last = iv.end, iv
		}
	}
	return w, last
}

// samplesOf adds up the pod's buckets of config within w, one sample per stack.
func samplesOf(ps *podState, config string, w Window) []profile.Sample {
	var samples []profile.Sample
	index := map[*stack]int{}
	for _, b := range ps.buckets {
		if b.config != config || b.start.Before(w.Start) || b.end.After(w.End) {
			continue
		}
		for _, e := range b.entries {
			i, ok := index[e.st]
			if !ok {
				i = len(samples)
				index[e.st] = i
				labels := map[string]string{}
				if e.st.comm != "" {
					labels[profile.LabelComm] = e.st.comm
				}
				if e.st.container != "" {
					labels[profile.LabelContainer] = e.st.container
				}
				samples = append(samples, profile.Sample{PID: e.st.pid, Frames: e.st.frames, Labels: labels})
			}
			samples[i].Count += e.count
			samples[i].CPUTime += e.cpu
		}
	}
	return samples
}

func deletePins(pins []pin, from time.Time) []pin {
	out := pins[:0]
	for _, p := range pins {
		if p.from.Before(from) {
			out = append(out, p)
		}
	}
	return out
}

// notRecorded says what the recorder does hold.
func (r *Recorder) notRecorded(namespace, pod string, from, to time.Time, held func(interval) bool) error {
	var first, last time.Time
	for _, iv := range r.store.intervals {
		if !held(iv) {
			continue
		}
		if first.IsZero() || iv.start.Before(first) {
			first = iv.start
		}
		if iv.end.After(last) {
			last = iv.end
		}
	}
	span := fmt.Sprintf("%s to %s", from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	if first.IsZero() {
		return fmt.Errorf("%w: no CPU samples of %s/%s from %s: the flight recorder holds none yet (it keeps %s)",
			ErrNotRecorded, namespace, pod, span, r.cfg.Window)
	}
	return fmt.Errorf("%w: no CPU samples of %s/%s from %s: the flight recorder holds %s to %s (it keeps %s)",
		ErrNotRecorded, namespace, pod, span, first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), r.cfg.Window)
}

// Profile is Query encoded as a gzipped pprof profile (Encode), with the
// trigger reason as label LabelReason when not "".
func (r *Recorder) Profile(namespace, pod string, from, to time.Time, reason string) ([]byte, Window, error) {
	ev, w, err := r.Query(namespace, pod, from, to)
	if err != nil {
		return nil, Window{}, err
	}
	if reason != "" {
		ev.Labels[LabelReason] = reason
	}
	data, err := Encode(ev)
	if err != nil {
		return nil, Window{}, fmt.Errorf("encode the profile of %s/%s: %w", namespace, pod, err)
	}
	return data, w, nil
}

// Encode returns a Query's event as a gzipped pprof profile: pprof.Convert's
// (sample types samples/count and cpu/nanoseconds), without the tid label
// (the recorder adds up a process's threads).
func Encode(ev *profile.Event) ([]byte, error) {
	p, err := pprof.Convert(ev)
	if err != nil {
		return nil, err
	}
	for _, s := range p.Sample {
		delete(s.NumLabel, "tid")
	}
	p.Comments = append(p.Comments, "kprof flight recorder")
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return nil, fmt.Errorf("write pprof: %w", err)
	}
	return buf.Bytes(), nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
