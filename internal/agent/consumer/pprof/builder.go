package pprof

import (
	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

// builder interns mappings, functions and locations into one profile.
type builder struct {
	p         *googlepprof.Profile
	mappings  map[profile.Mapping]*googlepprof.Mapping
	kernel    *googlepprof.Mapping
	functions map[funcKey]*googlepprof.Function
	locs      map[locKey]*googlepprof.Location
}

type funcKey struct{ name, file string }

// locKey identifies a location: its mapping (nil when unmapped) and address.
type locKey struct {
	m    *googlepprof.Mapping
	addr uint64
}

func newBuilder() *builder {
	return &builder{
		p:         &googlepprof.Profile{},
		mappings:  map[profile.Mapping]*googlepprof.Mapping{},
		functions: map[funcKey]*googlepprof.Function{},
		locs:      map[locKey]*googlepprof.Location{},
	}
}

// locations returns the locations of frames, leaf first, merging each run of
// frames with the same address and kind into one location (an inline group).
func (b *builder) locations(frames []profile.Frame) []*googlepprof.Location {
	var out []*googlepprof.Location
	for group := range profile.InlineGroups(frames) {
		out = append(out, b.location(group))
	}
	return out
}

// location returns the location of one inline group (innermost frame first),
// creating it on first sight. A location seen before keeps its first lines.
func (b *builder) location(group []profile.Frame) *googlepprof.Location {
	m := b.mapping(&group[0])
	key := locKey{m: m, addr: group[0].Address}
	if loc, ok := b.locs[key]; ok {
		return loc
	}
	loc := &googlepprof.Location{
		ID:      uint64(len(b.p.Location) + 1),
		Mapping: m,
		Address: group[0].Address,
	}
	for _, f := range group {
		if f.Function == "" && f.File == "" {
			continue // unknown: the address alone identifies it
		}
		loc.Line = append(loc.Line, googlepprof.Line{Function: b.function(f.Function, f.File), Line: int64(f.Line)})
	}
	if m != nil && len(loc.Line) > 0 {
		m.HasFunctions = true
		m.HasFilenames = m.HasFilenames || group[0].File != ""
		m.HasLineNumbers = m.HasLineNumbers || group[0].Line != 0
		m.HasInlineFrames = m.HasInlineFrames || len(loc.Line) > 1
	}
	b.locs[key] = loc
	b.p.Location = append(b.p.Location, loc)
	return loc
}

// mapping returns the mapping of f: the kernel's for kernel frames, nil for
// unmapped user frames.
func (b *builder) mapping(f *profile.Frame) *googlepprof.Mapping {
	switch {
	case f.Kernel:
		if b.kernel == nil {
			b.kernel = b.newMapping(profile.Mapping{File: profile.KernelMappingFile})
		}
		return b.kernel
	case f.Mapping == nil:
		return nil
	}
	if m, ok := b.mappings[*f.Mapping]; ok {
		return m
	}
	m := b.newMapping(*f.Mapping)
	b.mappings[*f.Mapping] = m
	return m
}

// kernelMappingLast moves the kernel mapping after the user mappings: pprof
// takes the first mapping for the main binary.
func (b *builder) kernelMappingLast() {
	if b.kernel == nil {
		return
	}
	ms := b.p.Mapping[:0]
	for _, m := range b.p.Mapping {
		if m != b.kernel {
			ms = append(ms, m)
		}
	}
	ms = append(ms, b.kernel)
	for i, m := range ms {
		m.ID = uint64(i + 1)
	}
	b.p.Mapping = ms
}

func (b *builder) newMapping(pm profile.Mapping) *googlepprof.Mapping {
	m := &googlepprof.Mapping{
		ID:      uint64(len(b.p.Mapping) + 1),
		Start:   pm.Start,
		Limit:   pm.Limit,
		Offset:  pm.Offset,
		File:    pm.File,
		BuildID: pm.BuildID,
	}
	b.p.Mapping = append(b.p.Mapping, m)
	return m
}

func (b *builder) function(name, file string) *googlepprof.Function {
	key := funcKey{name, file}
	if fn, ok := b.functions[key]; ok {
		return fn
	}
	fn := &googlepprof.Function{
		ID:         uint64(len(b.p.Function) + 1),
		Name:       name,
		SystemName: name,
		Filename:   file,
	}
	b.functions[key] = fn
	b.p.Function = append(b.p.Function, fn)
	return fn
}
