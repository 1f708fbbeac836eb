package loader

import (
	"debug/elf"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/kprof/kprof/internal/agent/bpf"
	"github.com/kprof/kprof/internal/agent/symbolize"
	"github.com/kprof/kprof/internal/agent/unwind"
)

var pageSize = uint64(os.Getpagesize())

// planned is one executable mapping of a process being loaded; t is nil for frame
// pointers.
type planned struct {
	m bpf.Mapping
	t *table
}

// load reads tgid's mappings, makes sure the tables of its files are in the kernel,
// and sets its entry in the sampler. A process loaded before is replaced.
func (l *Loader) load(tgid uint32) error {
	pid := int32(tgid)
	start, err := symbolize.ProcessStartTime(l.cfg.ProcRoot, pid)
	if err != nil {
		return err
	}
	ems, err := symbolize.ReadExecMappings(l.cfg.ProcRoot, pid)
	if err != nil {
		return err
	}
	held := make(map[*table]bool) // one reference per table per process
	var plan []planned
	for _, em := range ems {
		p := planned{m: bpf.Mapping{Start: em.Start, End: em.Limit}}
		if em.IsFile() {
			if t, bias, ok := l.mappingTable(pid, em, held); ok {
				p.m.Bias, p.m.RowOff, p.m.RowLen, p.t = bias, t.off, t.n, t
			}
		}
		plan = append(plan, p)
	}
	plan = l.fit(plan)
	var keep []*table
	for t := range held {
		if !slices.ContainsFunc(plan, func(p planned) bool { return p.t == t }) {
			l.releaseAll([]*table{t})
			continue
		}
		keep = append(keep, t)
	}
	maps := make([]bpf.Mapping, len(plan))
	for i, p := range plan {
		maps[i] = p.m
	}
	if err := l.cfg.Sampler.SetProcess(tgid, maps); err != nil {
		l.releaseAll(keep)
		return fmt.Errorf("setting the mappings of process %d: %w", tgid, err)
	}
	if old := l.procs[tgid]; old != nil {
		l.releaseAll(old.tables) // after the new references: shared tables stay put
	}
	l.procs[tgid] = &proc{start: start, tables: keep, loadedAt: l.now()}
	return nil
}

// mappingTable returns the table of em's file with a reference held in held, and
// the mapping's bias; false means frame pointers (counted by reason).
func (l *Loader) mappingTable(pid int32, em symbolize.ExecMapping, held map[*table]bool) (*table, uint64, bool) {
	o, err := symbolize.OpenMappedObject(l.cfg.ProcRoot, pid, em, l.cfg.MaxFileBytes)
	if err != nil {
		l.log.Debug("opening a mapped file for its unwind table", "pid", pid, "path", em.Path, "err", err)
		l.metrics.fp[ReasonNoTable].Inc()
		return nil, 0, false
	}
	defer o.Close()
	bias, ok := o.Bias(em, pageSize)
	if !ok {
		l.metrics.fp[ReasonNoTable].Inc()
		return nil, 0, false
	}
	if reason, ok := l.tables.noRows[o.Key]; ok {
		l.metrics.fp[reason].Inc()
		return nil, 0, false
	}
	if t := l.tables.byKey[o.Key]; t != nil {
		if !held[t] {
			l.tables.acquire(t)
			held[t] = true
		}
		return t, bias, true
	}
	if isGo(o.ELF) {
		l.tables.rememberNoRows(o.Key, ReasonGo)
		l.metrics.fp[ReasonGo].Inc()
		return nil, 0, false
	}
	t, reason := l.buildTable(o, em.Path)
	if t == nil {
		l.metrics.fp[reason].Inc()
		return nil, 0, false
	}
	held[t] = true
	return t, bias, true
}

// buildTable builds the table of o, writes it to free rows and returns it with one
// reference; nil and the reason when the file gets frame pointers.
func (l *Loader) buildTable(o *symbolize.MappedObject, path string) (*table, string) {
	began := time.Now()
	tab, err := l.safeBuild(o.ELF)
	l.metrics.buildSeconds.Observe(time.Since(began).Seconds())
	if err != nil {
		l.metrics.buildErrors.Inc()
		l.log.Debug("building an unwind table", "path", path, "key", o.Key, "err", err)
		l.tables.rememberNoRows(o.Key, ReasonNoTable)
		return nil, ReasonNoTable
	}
	rows := bpf.TableRows(tab) // with a CFANone row at the table's End
	if len(rows) == 0 {
		l.tables.rememberNoRows(o.Key, ReasonNoTable)
		return nil, ReasonNoTable
	}
	if uint64(len(rows)) > uint64(l.tables.alloc.capacity) {
		l.tables.rememberNoRows(o.Key, ReasonNoRoom) // it never fits
		return nil, ReasonNoRoom
	}
	n := uint32(len(rows))
	off, ok, evicted := l.tables.reserve(n)
	l.metrics.tablesEvicted.Add(float64(evicted))
	if !ok {
		return nil, ReasonNoRoom // room may come when processes exit: not remembered
	}
	if err := l.cfg.Sampler.WriteRows(off, rows); err != nil {
		l.tables.alloc.release(off, n)
		l.log.Warn("writing unwind rows to the sampler", "path", path, "rows", n, "err", err)
		return nil, ReasonNoRoom
	}
	l.metrics.tablesLoaded.Inc()
	return l.tables.add(o.Key, off, n), ""
}

// safeBuild calls Build; a panic on a malformed file is an error, not a crash of the agent.
func (l *Loader) safeBuild(f *elf.File) (t *unwind.Table, err error) {
	defer func() {
		if p := recover(); p != nil {
			t, err = nil, fmt.Errorf("panic while building the unwind table: %v", p)
		}
	}()
	t, err = l.cfg.Build(f)
	if err == nil && t == nil {
		err = fmt.Errorf("no table")
	}
	return t, err
}

// isGo tells a Go binary: its code has no call frame information for the unwinder,
// and always frame pointers (amd64).
func isGo(f *elf.File) bool {
	return f.Section(".gopclntab") != nil || f.Section(".go.buildinfo") != nil
}

// fit merges contiguous frame-pointer mappings, then, while there are more than
// MaxMappings, merges the two neighbouring frame-pointer mappings with the smallest
// gap between them (code mapped into that gap later, by a dlopen, is then walked by
// frame pointer instead of being reported), or, with no such pair, turns the
// mapping with the fewest rows to frame pointers (counted).
func (l *Loader) fit(plan []planned) []planned {
	plan = mergeFramePointers(plan, 0)
	for len(plan) > l.cfg.MaxMappings {
		pair, gap := -1, uint64(0)
		for i := 1; i < len(plan); i++ {
			if plan[i-1].t == nil && plan[i].t == nil {
				if g := plan[i].m.Start - plan[i-1].m.End; pair < 0 || g < gap {
					pair, gap = i, g
				}
			}
		}
		if pair > 0 {
			plan[pair-1].m.End = plan[pair].m.End
			plan = slices.Delete(plan, pair, pair+1)
			continue
		}
		smallest := -1
		for i, p := range plan {
			if p.t != nil && (smallest < 0 || p.m.RowLen < plan[smallest].m.RowLen) {
				smallest = i
			}
		}
		plan[smallest] = planned{m: bpf.Mapping{Start: plan[smallest].m.Start, End: plan[smallest].m.End}}
		l.metrics.fp[ReasonTooManyMappings].Inc()
		plan = mergeFramePointers(plan, 0)
	}
	return plan
}

// mergeFramePointers merges neighbouring frame-pointer mappings at most maxGap apart.
func mergeFramePointers(plan []planned, maxGap uint64) []planned {
	out := plan[:0]
	for _, p := range plan {
		if n := len(out); n > 0 && p.t == nil && out[n-1].t == nil && p.m.Start-out[n-1].m.End <= maxGap {
			out[n-1].m.End = p.m.End
			continue
		}
		out = append(out, p)
	}
	return out
}
