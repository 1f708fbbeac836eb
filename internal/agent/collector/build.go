package collector

import (
	"encoding/binary"
	"strconv"
	"time"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/agent/symbolize"
)

// batch aggregates the raw samples of several drains of one interval by thread and
// stack.
type batch struct {
	index   map[string]int // stack key → position in samples
	samples []bpf.RawSample
	stats   bpf.Stats
	key     []byte
}

func newBatch() *batch { return &batch{index: make(map[string]int)} }

func (b *batch) add(raw []bpf.RawSample, stats bpf.Stats) {
	b.stats.Samples += stats.Samples
	b.stats.MapFull += stats.MapFull
	u, w := &b.stats.Unwind, stats.Unwind
	u.FramesByTable += w.FramesByTable
	u.FramesByFramePointer += w.FramesByFramePointer
	u.Complete += w.Complete
	u.NoRule += w.NoRule
	u.ReadError += w.ReadError
	u.Truncated += w.Truncated
	for _, r := range raw {
		k := b.keyOf(r)
		if i, ok := b.index[string(k)]; ok {
			b.samples[i].Count += r.Count
			continue
		}
		b.index[string(k)] = len(b.samples)
		b.samples = append(b.samples, r)
	}
}

// keyOf encodes the thread and both stacks; the user stack's length separates the two.
func (b *batch) keyOf(r bpf.RawSample) []byte {
	k := b.key[:0]
	k = binary.LittleEndian.AppendUint32(k, r.TGID)
	k = binary.LittleEndian.AppendUint32(k, r.PID)
	k = binary.LittleEndian.AppendUint32(k, uint32(len(r.User)))
	for _, a := range r.User {
		k = binary.LittleEndian.AppendUint64(k, a)
	}
	for _, a := range r.Kernel {
		k = binary.LittleEndian.AppendUint64(k, a)
	}
	b.key = k
	return k
}

func (b *batch) pids() map[int32]bool {
	pids := make(map[int32]bool)
	for _, r := range b.samples {
		pids[int32(r.TGID)] = true
	}
	return pids
}

// stackSymbolizer names the stacks of one interval: a Symbolizer or a symbolize.Batch.
type stackSymbolizer interface {
	User(pid int32, addrs []uint64) []profile.Frame
	Kernel(addrs []uint64) []profile.Frame
}

// batchSymbolizer is the optional part of a Symbolizer (symbolize.Symbolizer has it):
// an interval's stacks are symbolized through one Batch, which reads each symbol table
// at most once for all of them, however small the symbolizer's cache. The collector
// closes it once the next interval is symbolized, so the tables of processes that keep
// running are not read again each interval either.
type batchSymbolizer interface {
	NewBatch() *symbolize.Batch
}

// event symbolizes and labels a batch; c.mu is held.
func (c *Collector) event(b *batch, start, end time.Time) *profile.Event {
	var sym stackSymbolizer = c.cfg.Symbolizer
	if bs, ok := c.cfg.Symbolizer.(batchSymbolizer); ok {
		sb := bs.NewBatch()
		prev := c.tables
		c.tables = sb
		if prev != nil {
			defer prev.Close()
		}
		defer sb.ReleasePages() // kept until the next interval: its tables, not their pages
		sym = sb
	}
	cc := c.cfg.Collection
	ev := &profile.Event{
		Config:    cc.Name,
		Version:   cc.Version,
		EventName: cc.Event,
		Period:    cc.SamplePeriod,
		Frequency: cc.Frequency,
		Start:     start,
		End:       end,
		Labels:    make(map[string]string, 2),
		Samples:   make([]profile.Sample, 0, len(b.samples)),
		Stats: profile.Stats{
			MapFullDrops: b.stats.MapFull,
			Unwind: profile.UnwindStats{
				FramesByTable: b.stats.Unwind.FramesByTable, FramesByFramePointer: b.stats.Unwind.FramesByFramePointer,
				Complete: b.stats.Unwind.Complete, NoRule: b.stats.Unwind.NoRule,
				ReadError: b.stats.Unwind.ReadError, Truncated: b.stats.Unwind.Truncated,
			},
		},
	}
	if c.cfg.Node != "" {
		ev.Labels[profile.LabelNode] = c.cfg.Node
	}
	if c.cfg.Cluster != "" {
		ev.Labels[profile.LabelCluster] = c.cfg.Cluster
	}
	labels := make(map[int32]map[string]string)
	for _, r := range b.samples {
		pid := int32(r.TGID)
		frames := make([]profile.Frame, 0, len(r.Kernel)+len(r.User))
		if len(r.Kernel) > 0 {
			frames = append(frames, sym.Kernel(r.Kernel)...)
		}
		if len(r.User) > 0 {
			frames = append(frames, sym.User(pid, r.User)...)
		}
		for _, f := range frames {
			if f.Function != "" {
				continue
			}
			if f.Kernel {
				ev.Stats.UnsymbolizedKernel++
			} else {
				ev.Stats.UnsymbolizedUser++
			}
		}
		l, ok := labels[pid]
		if !ok {
			l = c.labels(pid)
			labels[pid] = l
		}
		ev.Samples = append(ev.Samples, profile.Sample{
			PID:     pid,
			TID:     int32(r.PID),
			Frames:  frames,
			Count:   r.Count,
			CPUTime: time.Duration(r.Count * c.period),
			Labels:  l,
		})
		ev.Stats.Samples += r.Count
	}
	return ev
}

// labels of pid's samples, shared by its samples in one Event.
func (c *Collector) labels(pid int32) map[string]string {
	if c.cfg.Labeler != nil {
		if l := c.cfg.Labeler.Labels(pid); l != nil {
			return l
		}
	}
	return map[string]string{profile.LabelPID: strconv.FormatInt(int64(pid), 10)}
}
