package otlp

import (
	"encoding/hex"
	"maps"
	"slices"

	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/profile"
)

// dictionary interns the entries of a ProfilesDictionary: each string,
// attribute, mapping, function, location and stack appears once, and index 0
// of every table is the zero value, as OTLP requires.
type dictionary struct {
	d        pprofile.ProfilesDictionary
	strs     map[string]int32
	attrs    map[attrKey]int32
	mappings map[profile.Mapping]int32
	kernel   int32 // the kernel mapping, 0 until a kernel frame is seen
	// threadIDs: samples carry thread.id (convertOptions).
	threadIDs bool
	funcs     map[funcKey]int32
	locs      map[string]int32 // locationKey → index
	stacks    map[string]int32 // location indexes → index
	key       []byte
	locIdx    []int32
}

type attrKey struct {
	key   string
	str   string
	num   int64
	isNum bool
}

type funcKey struct{ name, file string }

func newDictionary(d pprofile.ProfilesDictionary) *dictionary {
	d.StringTable().Append("")
	d.MappingTable().AppendEmpty()
	d.LocationTable().AppendEmpty()
	d.FunctionTable().AppendEmpty()
	d.LinkTable().AppendEmpty()
	d.AttributeTable().AppendEmpty()
	d.StackTable().AppendEmpty()
	return &dictionary{
		d:        d,
		strs:     map[string]int32{"": 0},
		attrs:    map[attrKey]int32{},
		mappings: map[profile.Mapping]int32{},
		funcs:    map[funcKey]int32{},
		locs:     map[string]int32{},
		stacks:   map[string]int32{"": 0},
	}
}

func (d *dictionary) str(s string) int32 {
	if i, ok := d.strs[s]; ok {
		return i
	}
	i := int32(d.d.StringTable().Len())
	d.d.StringTable().Append(s)
	d.strs[s] = i
	return i
}

func (d *dictionary) attrStr(key, value string) int32 {
	return d.attr(attrKey{key: key, str: value})
}

func (d *dictionary) attrInt(key string, value int64) int32 {
	return d.attr(attrKey{key: key, num: value, isNum: true})
}

// attr interns the attribute k: its key as a string index and its value as a string
// or an integer, as k.isNum says.
func (d *dictionary) attr(k attrKey) int32 {
	if i, ok := d.attrs[k]; ok {
		return i
	}
	a := d.d.AttributeTable().AppendEmpty()
	a.SetKeyStrindex(d.str(k.key))
	if k.isNum {
		a.Value().SetInt(k.num)
	} else {
		a.Value().SetStr(k.str)
	}
	i := int32(d.d.AttributeTable().Len() - 1)
	d.attrs[k] = i
	return i
}

// sampleAttributes are the attributes of one sample: thread.id (with threadIDs), then its
// labels that are neither resource attributes nor pid/tid, in key order.
func (d *dictionary) sampleAttributes(s *profile.Sample) []int32 {
	var out []int32
	if s.TID != 0 && d.threadIDs {
		out = append(out, d.attrInt(attrThreadID, int64(s.TID)))
	}
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		if _, res := resourceLabel(k); res || k == profile.LabelPID || k == profile.LabelTID || k == "" || s.Labels[k] == "" {
			continue
		}
		out = append(out, d.attrStr(k, s.Labels[k]))
	}
	return out
}

// stack returns the stack of frames (leaf first), merging each run of frames
// with the same address and kind into one location (an inline group).
func (d *dictionary) stack(frames []profile.Frame) int32 {
	d.locIdx = d.locIdx[:0]
	for group := range profile.InlineGroups(frames) {
		d.locIdx = append(d.locIdx, d.location(group))
	}
	d.key = appendInt32s(d.key[:0], d.locIdx...)
	if i, ok := d.stacks[string(d.key)]; ok {
		return i
	}
	st := d.d.StackTable().AppendEmpty()
	st.LocationIndices().FromRaw(d.locIdx)
	i := int32(d.d.StackTable().Len() - 1)
	d.stacks[string(d.key)] = i
	return i
}

// location returns the location of one inline group (innermost frame first).
// Its identity is its value: mapping, address, kind and lines, so that
// unmapped addresses of two processes never share a location by accident.
func (d *dictionary) location(group []profile.Frame) int32 {
	f0 := &group[0]
	m := d.mapping(f0)
	key := appendInt32s(nil, m)
	key = append(key, byte(f0.Address), byte(f0.Address>>8), byte(f0.Address>>16), byte(f0.Address>>24),
		byte(f0.Address>>32), byte(f0.Address>>40), byte(f0.Address>>48), byte(f0.Address>>56))
	if f0.Kernel {
		key = append(key, 1)
	} else {
		key = append(key, 0)
	}
	type line struct {
		fn   int32
		line int64
	}
	var lines []line
	for i := range group {
		f := &group[i]
		if f.Function == "" && f.File == "" {
			continue // unknown: the address alone identifies it
		}
		l := line{fn: d.function(f.Function, f.File), line: int64(max(f.Line, 0))}
		lines = append(lines, l)
		key = appendInt32s(key, l.fn, int32(l.line), int32(l.line>>32))
	}
	if i, ok := d.locs[string(key)]; ok {
		return i
	}
	loc := d.d.LocationTable().AppendEmpty()
	loc.SetMappingIndex(m)
	loc.SetAddress(f0.Address)
	for _, l := range lines {
		ol := loc.Lines().AppendEmpty()
		ol.SetFunctionIndex(l.fn)
		ol.SetLine(l.line)
	}
	if f0.Kernel {
		loc.AttributeIndices().Append(d.attrStr(attrFrameType, frameTypeKernel))
	}
	i := int32(d.d.LocationTable().Len() - 1)
	d.locs[string(key)] = i
	return i
}

// mapping returns the mapping of f: the kernel's for kernel frames, 0 (none)
// for unmapped user frames.
func (d *dictionary) mapping(f *profile.Frame) int32 {
	switch {
	case f.Kernel:
		if d.kernel == 0 {
			m := d.d.MappingTable().AppendEmpty()
			m.SetFilenameStrindex(d.str(profile.KernelMappingFile))
			m.AttributeIndices().Append(d.attrStr(attrFrameType, frameTypeKernel))
			d.kernel = int32(d.d.MappingTable().Len() - 1)
		}
		return d.kernel
	case f.Mapping == nil || *f.Mapping == (profile.Mapping{}):
		return 0
	}
	if i, ok := d.mappings[*f.Mapping]; ok {
		return i
	}
	pm := f.Mapping
	m := d.d.MappingTable().AppendEmpty()
	m.SetMemoryStart(pm.Start)
	m.SetMemoryLimit(pm.Limit)
	m.SetFileOffset(pm.Offset)
	m.SetFilenameStrindex(d.str(pm.File))
	if pm.BuildID != "" {
		m.AttributeIndices().Append(d.attrStr(buildIDKey(pm.BuildID), pm.BuildID))
	}
	i := int32(d.d.MappingTable().Len() - 1)
	d.mappings[*pm] = i
	return i
}

// buildIDKey is the attribute of a build ID: a hex one is a GNU build ID, any
// other a Go build ID (profile.Mapping.BuildID holds one or the other).
func buildIDKey(id string) string {
	if _, err := hex.DecodeString(id); err == nil {
		return attrBuildIDGNU
	}
	return attrBuildIDGo
}

func (d *dictionary) function(name, file string) int32 {
	k := funcKey{name, file}
	if i, ok := d.funcs[k]; ok {
		return i
	}
	fn := d.d.FunctionTable().AppendEmpty()
	fn.SetNameStrindex(d.str(name))
	fn.SetSystemNameStrindex(d.str(name))
	fn.SetFilenameStrindex(d.str(file))
	i := int32(d.d.FunctionTable().Len() - 1)
	d.funcs[k] = i
	return i
}
