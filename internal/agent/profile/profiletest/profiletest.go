// Package profiletest builds profile events from arbitrary bytes, for the consumers' fuzz
// targets.
package profiletest

import (
	"time"

	"github.com/kprof/kprof/internal/agent/profile"
)

// labelKeys are the sample label keys the agent writes, and two it does not.
var labelKeys = []string{
	profile.LabelPID, profile.LabelComm, profile.LabelExe, profile.LabelContainerID, profile.LabelPod,
	profile.LabelNamespace, profile.LabelContainer, profile.LabelPodUID, profile.LabelTID, "other", "",
}

// eventNames are the perf events a consumer treats differently ("" is none).
var eventNames = []string{"", "cpu-clock", "task-clock", "page-faults"}

// EventFromBytes builds a profile event from data; every input, empty included, gives one, and
// the same input the same event. Past the end of data every byte reads as zero.
//
// The event has a config name and version, an event name ("", cpu-clock, task-clock or
// page-faults), any period, frequency, start and end (End may precede Start), node and cluster
// labels and one more, 1 to 4 mappings with any bounds, and up to 15 samples of up to 31 frames
// each. Values are drawn from small pools so that they repeat and collide: PIDs and TIDs are
// mostly 0 to 3 (sometimes any int32, negative included), label keys mostly the agent's own
// (sometimes any short string), frame addresses 0 to 7, strings up to 7 bytes. A frame may be
// kernel or user, have a function, a file, any line (negative included) and, if user, one of
// the mappings; counts and CPU times take any value, so their sums can overflow.
func EventFromBytes(data []byte) *profile.Event {
	r := &byteReader{b: data}
	ev := &profile.Event{
		Config:    r.string(),
		Version:   int64(r.uint64()),
		EventName: eventNames[int(r.byte())%len(eventNames)],
		Period:    r.uint64(),
		Frequency: uint64(r.byte()),
		Start:     time.Unix(0, int64(r.uint64()>>1)),
		End:       time.Unix(0, int64(r.uint64()>>1)),
		Labels:    map[string]string{profile.LabelNode: r.string(), profile.LabelCluster: r.string(), r.string(): r.string()},
	}
	mappings := make([]*profile.Mapping, 1+r.byte()%4)
	for i := range mappings {
		mappings[i] = &profile.Mapping{Start: r.uint64(), Limit: r.uint64(), Offset: r.uint64(), File: r.string(), BuildID: r.string()}
	}
	for range r.byte() % 16 {
		s := profile.Sample{PID: r.id(), TID: r.id(), Count: r.uint64(), CPUTime: time.Duration(r.uint64())}
		for range r.byte() % 4 {
			if s.Labels == nil {
				s.Labels = map[string]string{}
			}
			s.Labels[r.labelKey()] = r.string()
		}
		for range r.byte() % 32 {
			c := r.byte()
			f := profile.Frame{Address: uint64(r.byte() % 8), Kernel: c&1 != 0, Line: int(int8(r.byte()))}
			if c&2 != 0 {
				f.Function = r.string()
			}
			if c&4 != 0 {
				f.File = r.string()
			}
			if c&8 != 0 && !f.Kernel {
				f.Mapping = mappings[int(c>>4)%len(mappings)]
			}
			s.Frames = append(s.Frames, f)
		}
		ev.Samples = append(ev.Samples, s)
	}
	return ev
}

// byteReader hands out fuzz bytes; past the end it returns zeros.
type byteReader struct{ b []byte }

func (r *byteReader) byte() byte {
	if len(r.b) == 0 {
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *byteReader) uint64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(r.byte())
	}
	return v
}

// string returns up to 7 bytes.
func (r *byteReader) string() string {
	n := min(int(r.byte()%8), len(r.b))
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// id returns a PID or TID: 0 to 3 when the next byte's high bit is clear, else any int32.
func (r *byteReader) id() int32 {
	c := r.byte()
	if c&0x80 == 0 {
		return int32(c % 4)
	}
	return int32(r.uint64())
}

// labelKey returns one of labelKeys, or any short string when the next byte says so.
func (r *byteReader) labelKey() string {
	i := int(r.byte()) % (len(labelKeys) + 1)
	if i == len(labelKeys) {
		return r.string()
	}
	return labelKeys[i]
}
