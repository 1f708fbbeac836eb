package recorder

import (
	"encoding/binary"
	"slices"
	"strings"
	"time"
	"unsafe"

	"github.com/kprof/kprof/internal/agent/profile"
)

// Approximate sizes of what the store holds beyond strings and slices' elements:
// a struct, its map entry and allocation overhead.
const (
	stackOverhead    = int64(unsafe.Sizeof(stack{})) + 64
	bucketOverhead   = int64(unsafe.Sizeof(bucket{})) + 64
	entryBytes       = int64(unsafe.Sizeof(entry{}))
	frameBytes       = int64(unsafe.Sizeof(profile.Frame{}))
	mappingBytes     = int64(unsafe.Sizeof(profile.Mapping{})) + 16
	intervalOverhead = int64(unsafe.Sizeof(interval{}))
)

type podKey struct{ namespace, name string }

// pin keeps a pod's buckets ending after from until `until`.
type pin struct{ from, until time.Time }

// podState is what the store holds of one pod.
type podState struct {
	buckets []*bucket // oldest first
	// dropped is the end of the newest bucket dropped (expired or evicted): the
	// pod's samples of intervals starting before it may be gone.
	dropped time.Time
	// since is the horizon when the state was created: what the pod had in
	// intervals ending before it is gone (a state is removed only once all it
	// dropped ended at or before the horizon).
	since time.Time
	pins  []pin
}

// holds reports whether the pod's samples of iv are all here, given the
// store's horizon.
func (ps *podState) holds(iv interval, horizon time.Time) bool {
	if iv.start.Before(ps.dropped) || !iv.end.After(ps.since) {
		return false
	}
	return iv.end.After(horizon) || ps.pinnedUntil(iv.end)
}

// pinnedUntil reports whether a pin keeps a bucket ending at end.
func (ps *podState) pinnedUntil(end time.Time) bool {
	for _, p := range ps.pins {
		if end.After(p.from) {
			return true
		}
	}
	return false
}

func (ps *podState) pinned(b *bucket) bool { return ps.pinnedUntil(b.end) }

// stack is one distinct stack of one process, with its labels, shared by
// every bucket that saw it. Its frames are copies (strings cloned), so that it
// keeps no symbol table of the symbolizer alive.
type stack struct {
	key             string
	pid             int32
	comm, container string
	frames          []profile.Frame
	refs            int // buckets holding it
	bytes           int64
}

// entry is a stack's counts in one bucket.
type entry struct {
	st    *stack
	count uint64
	cpu   time.Duration
}

// bucket is one pod's samples of one interval of one collection config.
type bucket struct {
	pod        *podState
	config     string
	start, end time.Time
	entries    []entry
	bytes      int64
	dead       bool
}

// interval is one time-based event recorded (with or without samples of any
// pod): what the recorder has seen, so that a pod without samples in it used
// no CPU.
type interval struct {
	config, eventName string
	period, frequency uint64
	start, end        time.Time
}

// store is the recorder's data; the Recorder's mutex guards it.
type store struct {
	pods      map[podKey]*podState
	buckets   []*bucket // in the order recorded: oldest first
	stacks    map[string]*stack
	intervals []interval // in the order recorded
	bytes     int64
	// horizon is where the window cut last: unpinned samples ending before it
	// are gone.
	horizon time.Time
}

func newStore() store {
	return store{pods: map[podKey]*podState{}, stacks: map[string]*stack{}}
}

// pod returns the pod's state, creating it.
func (s *store) pod(key podKey) *podState {
	ps := s.pods[key]
	if ps == nil {
		ps = &podState{since: s.horizon}
		s.pods[key] = ps
	}
	return ps
}

// keyed is a sample of a pod with its stack key.
type keyed struct {
	key             string
	s               *profile.Sample
	comm, container string
}

// groupByPod returns the event's samples that carry a pod, by pod, each with
// the key of its stack: pid, comm, container and each frame's address, kind and
// whether it is symbolized (a stack first seen unsymbolized is not reused once
// its symbols load).
func groupByPod(ev *profile.Event) map[podKey][]keyed {
	groups := map[podKey][]keyed{}
	var buf []byte
	for i := range ev.Samples {
		s := &ev.Samples[i]
		ns, name := s.Labels[profile.LabelNamespace], s.Labels[profile.LabelPod]
		if ns == "" || name == "" || s.Count == 0 {
			continue
		}
		comm, container := s.Labels[profile.LabelComm], s.Labels[profile.LabelContainer]
		buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(s.PID))
		buf = append(append(buf, comm...), 0)
		buf = append(append(buf, container...), 0)
		for _, f := range s.Frames {
			var flags byte
			if f.Kernel {
				flags |= 1
			}
			if f.Function != "" {
				flags |= 2
			}
			buf = binary.LittleEndian.AppendUint64(append(buf, flags), f.Address)
		}
		k := podKey{ns, name}
		groups[k] = append(groups[k], keyed{key: string(buf), s: s, comm: comm, container: container})
	}
	return groups
}

func (s *store) addInterval(ev *profile.Event) {
	iv := interval{config: ev.Config, eventName: ev.EventName, period: ev.Period, frequency: ev.Frequency, start: ev.Start, end: ev.End}
	s.intervals = append(s.intervals, iv)
	s.bytes += intervalBytes(iv)
}

func intervalBytes(iv interval) int64 {
	return intervalOverhead + int64(len(iv.config)+len(iv.eventName))
}

// addBucket records one pod's samples of ev, adding up identical stacks.
func (s *store) addBucket(key podKey, ev *profile.Event, samples []keyed) {
	ps := s.pod(key)
	b := &bucket{pod: ps, config: ev.Config, start: ev.Start, end: ev.End}
	index := make(map[*stack]int, len(samples))
	for _, k := range samples {
		st := s.stacks[k.key]
		if st == nil {
			st = newStack(k)
			s.stacks[k.key] = st
			s.bytes += st.bytes
		}
		i, ok := index[st]
		if !ok {
			i = len(b.entries)
			index[st] = i
			b.entries = append(b.entries, entry{st: st})
			st.refs++
		}
		b.entries[i].count += k.s.Count
		b.entries[i].cpu += k.s.CPUTime
	}
	b.entries = slices.Clip(b.entries)
	b.bytes = bucketOverhead + int64(len(b.entries))*entryBytes
	s.bytes += b.bytes
	ps.buckets = append(ps.buckets, b)
	s.buckets = append(s.buckets, b)
}

func newStack(k keyed) *stack {
	st := &stack{
		key:       k.key,
		pid:       k.s.PID,
		comm:      strings.Clone(k.comm),
		container: strings.Clone(k.container),
		frames:    make([]profile.Frame, len(k.s.Frames)),
	}
	n := stackOverhead + 2*int64(len(k.key)) + int64(len(st.comm)+len(st.container)) + int64(len(st.frames))*frameBytes
	var from, to *profile.Mapping
	for i, f := range k.s.Frames {
		f.Function, f.File = strings.Clone(f.Function), strings.Clone(f.File)
		n += int64(len(f.Function) + len(f.File))
		if f.Mapping != nil {
			if f.Mapping != from {
				m := *f.Mapping
				m.File, m.BuildID = strings.Clone(m.File), strings.Clone(m.BuildID)
				from, to = f.Mapping, &m
				n += mappingBytes + int64(len(m.File)+len(m.BuildID))
			}
			f.Mapping = to
		}
		st.frames[i] = f
	}
	st.bytes = n
	return st
}

// drop frees a bucket; compact removes it from the lists.
func (s *store) drop(b *bucket) {
	b.dead = true
	for _, e := range b.entries {
		e.st.refs--
		if e.st.refs == 0 {
			delete(s.stacks, e.st.key)
			s.bytes -= e.st.bytes
		}
	}
	b.entries = nil
	s.bytes -= b.bytes
	if b.end.After(b.pod.dropped) {
		b.pod.dropped = b.end
	}
}

// compact removes dead buckets from the lists, and the pods left with nothing
// to tell.
func (s *store) compact() {
	s.buckets = slices.DeleteFunc(s.buckets, func(b *bucket) bool { return b.dead })
	for key, ps := range s.pods {
		ps.buckets = slices.DeleteFunc(ps.buckets, func(b *bucket) bool { return b.dead })
		// A pod whose samples were evicted after the horizon keeps its state:
		// its dropped time says they are gone.
		if len(ps.buckets) == 0 && len(ps.pins) == 0 && !ps.dropped.After(s.horizon) {
			delete(s.pods, key)
		}
	}
}

// expire drops the pins past their time, the buckets that end at or before
// cutoff and no pin keeps, and the intervals that end before oldest.
func (s *store) expire(now, cutoff, oldest time.Time) {
	if cutoff.After(s.horizon) {
		s.horizon = cutoff
	}
	for _, ps := range s.pods {
		ps.pins = slices.DeleteFunc(ps.pins, func(p pin) bool { return !p.until.After(now) })
	}
	for _, b := range s.buckets {
		if !b.end.After(cutoff) && !b.pod.pinned(b) {
			s.drop(b)
		}
	}
	n := 0
	for n < len(s.intervals) && s.intervals[n].end.Before(oldest) {
		s.bytes -= intervalBytes(s.intervals[n])
		n++
	}
	s.intervals = slices.Delete(s.intervals, 0, n)
	s.compact()
}

// evict drops the oldest buckets, unpinned ones first, until the store holds
// at most max bytes, and returns how many it dropped.
func (s *store) evict(max int64) int {
	n := 0
	for pass := 0; pass < 2 && s.bytes > max; pass++ {
		for _, b := range s.buckets {
			if s.bytes <= max {
				break
			}
			if b.dead || (pass == 0 && b.pod.pinned(b)) {
				continue
			}
			s.drop(b)
			n++
		}
	}
	if n > 0 {
		s.compact()
	}
	return n
}

// longestInterval is the longest interval recorded ending after since.
func (s *store) longestInterval(since time.Time) time.Duration {
	var d time.Duration
	for i := len(s.intervals) - 1; i >= 0 && s.intervals[i].end.After(since); i-- {
		d = max(d, s.intervals[i].end.Sub(s.intervals[i].start))
	}
	return d
}

func (s *store) podsWithData() int {
	n := 0
	for _, ps := range s.pods {
		if len(ps.buckets) > 0 {
			n++
		}
	}
	return n
}

func (s *store) pinnedPods() int {
	n := 0
	for _, ps := range s.pods {
		if len(ps.pins) > 0 {
			n++
		}
	}
	return n
}
