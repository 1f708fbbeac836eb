// Package pprof converts the agent's profile events to pprof profiles
// (github.com/google/pprof/profile), the format the pprof tool, Datadog and
// most profilers read.
package pprof

import (
	"bytes"
	"errors"
	"fmt"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

// Convert returns ev as a pprof profile with the sample types
// [samples/count, cpu/nanoseconds]. Frames of one sample that share an address
// become one location whose lines list the inlined functions innermost first.
// Kernel frames belong to a "[kernel.kallsyms]" mapping. Sample labels become
// string labels, pid and tid numeric labels. The profile is checked with
// CheckValid before it is returned. ev is only read.
func Convert(ev *profile.Event) (*googlepprof.Profile, error) {
	if ev == nil {
		return nil, errors.New("pprof: convert: nil event")
	}
	b := newBuilder()
	p := b.p
	p.SampleType = []*googlepprof.ValueType{
		{Type: "samples", Unit: "count"},
		{Type: "cpu", Unit: "nanoseconds"},
	}
	p.PeriodType = &googlepprof.ValueType{Type: "cpu", Unit: "nanoseconds"}
	p.Period = ev.PeriodNanos()
	if !ev.Start.IsZero() {
		p.TimeNanos = ev.Start.UnixNano()
		if ev.End.After(ev.Start) {
			p.DurationNanos = ev.End.Sub(ev.Start).Nanoseconds()
		}
	}
	if ev.EventName != "" {
		p.Comments = append(p.Comments, "event="+ev.EventName)
	}

	for i := range ev.Samples {
		s := &ev.Samples[i]
		ps := &googlepprof.Sample{
			Value:    []int64{profile.Int64(s.Count), max(int64(s.CPUTime), 0)},
			Location: b.locations(s.Frames),
			NumLabel: map[string][]int64{profile.LabelPID: {int64(s.PID)}, profile.LabelTID: {int64(s.TID)}},
		}
		ps.Label = labels(ev.Labels, s.Labels)
		p.Sample = append(p.Sample, ps)
	}
	b.kernelMappingLast()
	if err := p.CheckValid(); err != nil {
		return nil, fmt.Errorf("pprof: convert config %q: invalid profile: %w", ev.Config, err)
	}
	return p, nil
}

// Encode returns ev as a gzip-compressed pprof protobuf.
func Encode(ev *profile.Event) ([]byte, error) {
	p, err := Convert(ev)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		return nil, fmt.Errorf("pprof: encode config %q: %w", ev.Config, err)
	}
	return buf.Bytes(), nil
}

// labels merges the event's common labels and the sample's (the sample's win)
// into pprof string labels. pid and tid are numeric labels instead.
func labels(common, own map[string]string) map[string][]string {
	if len(common)+len(own) == 0 {
		return nil
	}
	out := make(map[string][]string, len(common)+len(own))
	for _, m := range []map[string]string{common, own} {
		for k, v := range m {
			if k == profile.LabelPID || k == profile.LabelTID {
				continue
			}
			out[k] = []string{v}
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
