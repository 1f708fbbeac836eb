package otlp

import (
	"cmp"
	"crypto/rand"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pprofile"

	"github.com/kprof/kprof/internal/agent/profile"
	"github.com/kprof/kprof/internal/serviceid"
)

// Sample and period types of the profiles Convert writes.
const (
	typeCPU     = "cpu"
	unitNanos   = "nanoseconds"
	typeSamples = "samples"
	unitCount   = "count"
)

// Convert returns ev as OTLP profiles: one ResourceProfiles per process (and
// its container and pod), each with one scope (ScopeName) holding a
// cpu/nanoseconds profile when the event measures time (cpu-clock,
// task-clock) and a samples/count profile. All share one dictionary in which
// strings, mappings, functions, locations, stacks and attributes appear once.
// Frames of one sample that share an address become one location whose lines
// list the inlined functions innermost first; kernel frames belong to a
// "[kernel.kallsyms]" mapping and carry profile.frame.type=kernel. An event
// without samples gives empty Profiles. Each sample carries its thread.id (the
// Profiles consumer only with Config.ThreadIDs); the scope carries kprof_config.
// ev is only read.
func Convert(ev *profile.Event) (pprofile.Profiles, error) {
	if ev == nil {
		return pprofile.Profiles{}, errors.New("otlp: convert: nil event")
	}
	return convertGroups(ev, groupByProcess(ev), convertOptions{threadIDs: true}), nil
}

// convertOptions are the choices of a consumer's Config that shape the conversion.
type convertOptions struct {
	threadIDs bool // Config.ThreadIDs
}

// resourceKey identifies the resource of a sample: its process, container and pod.
type resourceKey struct {
	pid    int64
	hasPID bool
	// The sample's labels that are resource attributes, as "key=value\x00" pairs
	// in key order.
	labels string
}

// sampleGroup is the samples of one resource, as indexes into Event.Samples.
type sampleGroup struct {
	key     resourceKey
	samples []int
}

// groupByProcess groups ev's samples by resource, in a stable order
// (namespace, pod, container, pid).
func groupByProcess(ev *profile.Event) []sampleGroup {
	idx := map[resourceKey]int{}
	var groups []sampleGroup
	var sb strings.Builder
	for i := range ev.Samples {
		s := &ev.Samples[i]
		pid, ok := pidValue(s.PID, s.Labels)
		sb.Reset()
		for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
			if _, res := resourceLabel(k); res && s.Labels[k] != "" {
				sb.WriteString(k)
				sb.WriteByte('=')
				sb.WriteString(s.Labels[k])
				sb.WriteByte(0)
			}
		}
		key := resourceKey{pid: pid, hasPID: ok, labels: sb.String()}
		g, seen := idx[key]
		if !seen {
			g = len(groups)
			idx[key] = g
			groups = append(groups, sampleGroup{key: key})
		}
		groups[g].samples = append(groups[g].samples, i)
	}
	slices.SortStableFunc(groups, func(a, b sampleGroup) int {
		la, lb := ev.Samples[a.samples[0]].Labels, ev.Samples[b.samples[0]].Labels
		return cmp.Or(
			strings.Compare(la[profile.LabelNamespace], lb[profile.LabelNamespace]),
			strings.Compare(la[profile.LabelPod], lb[profile.LabelPod]),
			strings.Compare(la[profile.LabelContainer], lb[profile.LabelContainer]),
			cmp.Compare(a.key.pid, b.key.pid),
			strings.Compare(a.key.labels, b.key.labels),
		)
	})
	return groups
}

// resourceLabel returns the resource attribute of a sample label, and whether
// the label is one.
func resourceLabel(label string) (string, bool) {
	if k, ok := podLabelKeys[label]; ok {
		return k, true
	}
	k, ok := processLabelKeys[label]
	return k, ok
}

// timeBased reports whether ev's samples measure CPU time.
func timeBased(ev *profile.Event) bool {
	switch ev.EventName {
	case "cpu-clock", "task-clock":
		return true
	}
	for i := range ev.Samples {
		if ev.Samples[i].CPUTime > 0 {
			return true
		}
	}
	return false
}

// convertGroups converts the samples of groups, one resource each.
func convertGroups(ev *profile.Event, groups []sampleGroup, opts convertOptions) pprofile.Profiles {
	pd := pprofile.NewProfiles()
	d := newDictionary(pd.Dictionary())
	d.threadIDs = opts.threadIDs
	withCPU := timeBased(ev)
	for _, g := range groups {
		rp := pd.ResourceProfiles().AppendEmpty()
		first := &ev.Samples[g.samples[0]]
		putResource(rp.Resource().Attributes(), ev.Labels, first.Labels, g.key)
		sp := rp.ScopeProfiles().AppendEmpty()
		sp.Scope().SetName(ScopeName)
		sp.Scope().SetVersion(moduleVersion())
		if ev.Config != "" {
			// As a scope attribute too: Pyroscope makes resource and scope attributes
			// series labels, not a profile's.
			sp.Scope().Attributes().PutStr(scopeAttrConfig, ev.Config)
		}

		var cpu, count *profileBuilder
		if withCPU {
			cpu = newProfileBuilder(sp.Profiles().AppendEmpty(), d, ev, typeCPU, unitNanos)
		}
		count = newProfileBuilder(sp.Profiles().AppendEmpty(), d, ev, typeSamples, unitCount)
		for _, i := range g.samples {
			s := &ev.Samples[i]
			stack := d.stack(s.Frames)
			attrs := d.sampleAttributes(s)
			if cpu != nil {
				cpu.add(stack, attrs, max(int64(s.CPUTime), 0))
			}
			count.add(stack, attrs, profile.Int64(s.Count))
		}
	}
	return pd
}

// putResource sets the attributes of one resource: the event's node labels,
// then the process and pod of its samples, and its service.name: the pod's
// service identity, else the executable's name (serviceid.FromLabels). Empty
// values are omitted.
func putResource(attrs pcommon.Map, common, sample map[string]string, key resourceKey) {
	putNodeLabels(attrs, common)
	if key.hasPID {
		attrs.PutInt(attrProcessPID, key.pid)
	}
	for _, k := range slices.Sorted(maps.Keys(sample)) {
		if ak, ok := resourceLabel(k); ok && sample[k] != "" {
			attrs.PutStr(ak, sample[k])
		}
	}
	// The executable's name is the base name of /proc/PID/exe (semantic conventions),
	// not comm, which the kernel cuts at 15 characters.
	exe := serviceid.ForExecutable(sample[profile.LabelExe], sample[profile.LabelComm]).Name
	if exe != "" {
		attrs.PutStr(attrProcessExecName, exe)
	}
	if _, ok := attrs.Get(attrServiceName); !ok && exe != "" {
		attrs.PutStr(attrServiceName, exe)
	}
}

// profileBuilder fills one profile of one resource, combining samples of the
// same stack and attributes.
type profileBuilder struct {
	p     pprofile.Profile
	index map[string]int // sample identity → index in p.Samples()
	key   []byte
}

func newProfileBuilder(p pprofile.Profile, d *dictionary, ev *profile.Event, typ, unit string) *profileBuilder {
	p.SampleType().SetTypeStrindex(d.str(typ))
	p.SampleType().SetUnitStrindex(d.str(unit))
	if typ == typeCPU || timeBased(ev) {
		p.PeriodType().SetTypeStrindex(d.str(typeCPU))
		p.PeriodType().SetUnitStrindex(d.str(unitNanos))
		p.SetPeriod(ev.PeriodNanos())
	} else {
		p.PeriodType().SetTypeStrindex(d.str(cmp.Or(ev.EventName, "events")))
		p.PeriodType().SetUnitStrindex(d.str(unitCount))
		p.SetPeriod(profile.Int64(ev.Period))
	}
	if !ev.Start.IsZero() {
		p.SetTime(pcommon.NewTimestampFromTime(ev.Start))
		if ev.End.After(ev.Start) {
			p.SetDurationNano(uint64(ev.End.Sub(ev.Start)))
		}
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	p.SetProfileID(pprofile.ProfileID(id))
	if ev.Config != "" {
		p.AttributeIndices().Append(d.attrStr(attrConfig, ev.Config))
		p.AttributeIndices().Append(d.attrInt(attrConfigVersion, ev.Version))
	}
	if ev.EventName != "" {
		p.AttributeIndices().Append(d.attrStr(attrEvent, ev.EventName))
	}
	return &profileBuilder{p: p, index: map[string]int{}}
}

// add adds value to the sample of stack and attrs, creating it on first sight.
func (b *profileBuilder) add(stack int32, attrs []int32, value int64) {
	b.key = appendInt32s(b.key[:0], stack)
	b.key = appendInt32s(b.key, attrs...)
	if i, ok := b.index[string(b.key)]; ok {
		v := b.p.Samples().At(i).Values()
		v.SetAt(0, saturatingAdd(v.At(0), value))
		return
	}
	s := b.p.Samples().AppendEmpty()
	s.SetStackIndex(stack)
	s.AttributeIndices().FromRaw(attrs)
	s.Values().Append(value)
	b.index[string(b.key)] = b.p.Samples().Len() - 1
}

func saturatingAdd(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func appendInt32s(b []byte, vs ...int32) []byte {
	for _, v := range vs {
		b = append(b, byte(v), byte(v>>8), byte(v>>16), byte(v>>24))
	}
	return b
}
