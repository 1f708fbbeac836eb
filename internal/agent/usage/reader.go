package usage

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/lifecycle"
)

// Units in UCUM.
const (
	unitSeconds = "s"
	unitBytes   = "By"
)

const (
	// searchEvery is how often the kubepods trees are looked for again (kubelet started
	// after the agent, a kind node added); a tree that vanishes is looked for at once.
	searchEvery = time.Minute
	// logEvery is the least time between two logs of one kind of trouble.
	logEvery = time.Minute
)

// Stats counts what went wrong in readings since New.
type Stats struct {
	// Readings is the number of readings taken.
	Readings uint64
	// Malformed counts value files whose content could not be parsed or was over the size
	// limit; their value is left out.
	Malformed uint64
	// ReadErrors counts directories and files that could not be read for another reason
	// than vanishing (permissions, I/O).
	ReadErrors uint64
	// Truncated counts readings (and searches) cut short by Config.MaxCgroups.
	Truncated uint64
}

// Reader reads pod and container usage from cgroups, once (ReadOnce) or every
// Config.Interval (Start).
type Reader struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex // serialises readings; guards what follows
	layout   *layout    // nil until detected
	trees    map[string]*trees
	counters map[string]*counter // by pointKey
	stats    Stats
	lastLog  map[string]time.Time
	muted    map[string]int // logs left out since the last one, by kind

	loopMu sync.Mutex
	guard  lifecycle.Guard
	stop   chan struct{}
	done   chan struct{} // closed when the loop has returned
}

// trees is what is known of the kubepods trees of one hierarchy.
type trees struct {
	roots    []string
	searched time.Time // zero: search at the next reading
}

// counter is what the last reading saw of one counter point.
type counter struct {
	start time.Time
	last  float64
}

// New checks cfg and builds a Reader. Nothing is read until ReadOnce or Start.
func New(cfg Config) (*Reader, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("usage config: %w", err)
	}
	return &Reader{
		cfg:      cfg,
		log:      cfg.Logger.With("component", "usage"),
		trees:    map[string]*trees{},
		counters: map[string]*counter{},
		lastLog:  map[string]time.Time{},
		muted:    map[string]int{},
	}, nil
}

// Stats returns the counts of trouble since New.
func (r *Reader) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// entry is one pod or container of a reading.
type entry struct {
	found
	cpu, mem       float64
	hasCPU, hasMem bool
}

// ReadOnce takes one reading at now: the usage of every pod and container cgroup found
// (pods sorted by UID, each followed by its containers sorted by ID; containers without a
// pod UID last), then Config.Extra's points. Vanished, malformed and unreadable cgroups
// are left out; the only error is a Root where no cgroup hierarchy can be found. Readings
// are serialised; Extra is called outside the Reader's lock (it may call Stats).
func (r *Reader) ReadOnce(now time.Time) (*profile.Metrics, error) {
	m, err := r.readCgroups(now)
	if err != nil {
		return nil, err
	}
	if r.cfg.Extra != nil {
		m.Points = append(m.Points, r.cfg.Extra(now)...)
	}
	return m, nil
}

// readCgroups is ReadOnce without Extra.
func (r *Reader) readCgroups(now time.Time) (*profile.Metrics, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.layout == nil {
		l, err := detectLayout(r.cfg.Root)
		if err != nil {
			return nil, fmt.Errorf("read usage: %w", err)
		}
		r.layout = &l
		r.log.Info("reading cgroups", "root", r.cfg.Root, "layout", l.kind, "hierarchies", hierarchyDirs(l))
	}
	r.stats.Readings++

	entries := map[string]*entry{}
	cpuSeen := map[string]bool{} // counters whose cgroup was found, read or not
	complete := true
	for _, h := range r.layout.hierarchies {
		w, ok := r.walk(h, now)
		complete = complete && ok
		for _, f := range w {
			e := entries[f.key()]
			if e == nil {
				e = &entry{found: f}
				entries[f.key()] = e
			} else if e.podUID == "" {
				e.podUID = f.podUID
			}
			if h.cpu {
				cpuSeen[f.key()] = true
				v, err := readCPU(f.dir, h.v2)
				if r.check(err, now) {
					e.cpu, e.hasCPU = v, true
				}
			}
			if h.mem {
				v, err := readMemory(f.dir, h.v2)
				if r.check(err, now) {
					e.mem, e.hasMem = v, true
				}
			}
		}
	}

	m := &profile.Metrics{Time: now, Labels: maps.Clone(r.cfg.Labels)}
	sorted := slices.SortedFunc(maps.Values(entries), func(a, b *entry) int {
		return cmp.Or(
			cmp.Compare(withoutPod(a), withoutPod(b)), cmp.Compare(a.podUID, b.podUID),
			cmp.Compare(a.kind, b.kind), cmp.Compare(a.containerID, b.containerID))
	})
	for _, e := range sorted {
		m.Points = append(m.Points, r.points(e, now)...)
	}
	// Forget the counters of cgroups gone. After a cut-short reading some were not looked
	// at: they are kept, unless that lets the state grow past twice the bound.
	if complete || len(r.counters) > 2*r.cfg.MaxCgroups {
		maps.DeleteFunc(r.counters, func(key string, _ *counter) bool { return !cpuSeen[key] })
	}
	return m, nil
}

// walk finds the pod and container cgroups of one hierarchy, searching for the kubepods
// trees when due. ok is false when the bound cut the reading short.
func (r *Reader) walk(h hierarchy, now time.Time) (cgroups []found, ok bool) {
	t := r.trees[h.dir]
	if t == nil {
		t = &trees{}
		r.trees[h.dir] = t
	}
	if t.searched.IsZero() || now.Sub(t.searched) >= searchEvery || now.Before(t.searched) {
		s := findKubepods(h.dir, r.cfg.MaxCgroups)
		for _, err := range s.errs {
			r.readError(err, now)
		}
		if s.truncated {
			r.truncated("search", h.dir, now)
		}
		if !slices.Equal(s.roots, t.roots) {
			r.log.Info("kubepods trees", "hierarchy", h.dir, "trees", s.roots)
		}
		t.roots, t.searched = s.roots, now
	}
	w := walkKubepods(t.roots, r.cfg.MaxCgroups)
	for _, err := range w.errs {
		r.readError(err, now)
	}
	if w.gone {
		t.searched = time.Time{}
	}
	if w.truncated {
		r.truncated("reading", h.dir, now)
	}
	return w.cgroups, !w.truncated
}

// points makes the points of one pod or container and updates its counter's state.
func (r *Reader) points(e *entry, now time.Time) []profile.Point {
	labels := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			labels[k] = v
		}
	}
	cpuName, memName := profile.PodCPUTime, profile.PodMemoryUsage
	if e.kind == containerCgroup {
		cpuName, memName = profile.ContainerCPUTime, profile.ContainerMemoryUsage
		set(profile.LabelContainerID, e.containerID)
	}
	set(profile.LabelPodUID, e.podUID)
	if r.cfg.Pods != nil {
		if name, ns, container, ok := r.cfg.Pods.LookupPod(e.podUID, e.containerID); ok {
			set(profile.LabelPod, name)
			set(profile.LabelNamespace, ns)
			if e.kind == containerCgroup {
				set(profile.LabelContainer, container)
			}
		}
	}
	var pts []profile.Point
	if e.hasCPU {
		c := r.counters[e.key()]
		switch {
		case c == nil:
			c = &counter{start: now}
			r.counters[e.key()] = c
		case e.cpu < c.last:
			r.log.Debug("cpu time went backwards: cgroup recreated", "cgroup", e.dir, "was", c.last, "now", e.cpu)
			c.start = now
		}
		c.last = e.cpu
		pts = append(pts, profile.Point{Name: cpuName, Kind: profile.Counter, Unit: unitSeconds, Value: e.cpu, Start: c.start, Labels: labels})
	}
	if e.hasMem {
		if e.hasCPU {
			labels = maps.Clone(labels)
		}
		pts = append(pts, profile.Point{Name: memName, Kind: profile.Gauge, Unit: unitBytes, Value: e.mem, Labels: labels})
	}
	return pts
}

// check sorts out a value file's read error: ok when there is none; a vanished cgroup is
// left out quietly; malformed and unreadable files are counted and logged.
func (r *Reader) check(err error, now time.Time) (ok bool) {
	switch {
	case err == nil:
		return true
	case vanished(err):
	case errors.Is(err, errMalformed):
		r.stats.Malformed++
		r.limitedWarn("malformed", now, "malformed cgroup file, value left out", "err", err)
	default:
		r.readError(err, now)
	}
	return false
}

func (r *Reader) readError(err error, now time.Time) {
	r.stats.ReadErrors++
	r.limitedWarn("read", now, "cannot read cgroup, left out", "err", err)
}

func (r *Reader) truncated(what, dir string, now time.Time) {
	r.stats.Truncated++
	r.limitedWarn("truncated", now, "too many cgroups, the rest left out", "what", what, "hierarchy", dir, "max_cgroups", r.cfg.MaxCgroups)
}

// limitedWarn logs at most once per logEvery per kind, saying how many were left out.
func (r *Reader) limitedWarn(kind string, now time.Time, msg string, args ...any) {
	if last, ok := r.lastLog[kind]; ok && now.Sub(last) < logEvery && !now.Before(last) {
		r.muted[kind]++
		return
	}
	r.lastLog[kind] = now
	if n := r.muted[kind]; n > 0 {
		args = append(args, "suppressed", n)
		r.muted[kind] = 0
	}
	r.log.Warn(msg, args...)
}

// withoutPod sorts containers whose path names no pod last.
func withoutPod(e *entry) int {
	if e.podUID == "" {
		return 1
	}
	return 0
}

func hierarchyDirs(l layout) []string {
	dirs := make([]string, len(l.hierarchies))
	for i, h := range l.hierarchies {
		dirs[i] = h.dir
	}
	return dirs
}
