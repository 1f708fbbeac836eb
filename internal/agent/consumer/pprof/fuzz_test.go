package pprof

import (
	"testing"
	"time"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile"
)

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

func (r *byteReader) string() string {
	n := int(r.byte() % 8)
	if n > len(r.b) {
		n = len(r.b)
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// fuzzEvent builds an event from data. Addresses come from a small pool so that
// locations, inline groups and mappings repeat and collide.
func fuzzEvent(data []byte) *profile.Event {
	r := &byteReader{b: data}
	ev := &profile.Event{
		Period:    r.uint64(),
		Frequency: uint64(r.byte()),
		Start:     time.Unix(0, int64(r.uint64()>>1)),
		End:       time.Unix(0, int64(r.uint64()>>1)),
	}
	mappings := make([]*profile.Mapping, 1+r.byte()%4)
	for i := range mappings {
		mappings[i] = &profile.Mapping{Start: r.uint64(), Limit: r.uint64(), Offset: r.uint64(), File: r.string(), BuildID: r.string()}
	}
	for range r.byte() % 16 {
		s := profile.Sample{PID: int32(r.uint64()), TID: int32(r.uint64()), Count: r.uint64(), CPUTime: time.Duration(r.uint64())}
		for range r.byte() % 4 {
			if s.Labels == nil {
				s.Labels = map[string]string{}
			}
			s.Labels[r.string()] = r.string()
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

func FuzzConvert(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("kprof"))
	f.Add(make([]byte, 256))
	seed := make([]byte, 512)
	for i := range seed {
		seed[i] = byte(i * 37)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, data []byte) {
		ev := fuzzEvent(data)
		p, err := Convert(ev)
		if err != nil {
			t.Fatalf("Convert: %v", err)
		}
		if err := p.CheckValid(); err != nil {
			t.Fatalf("CheckValid: %v", err)
		}
		var wantFrames, gotLocs int
		for i, s := range ev.Samples {
			gotLocs += len(p.Sample[i].Location)
			wantFrames += len(s.Frames)
		}
		if gotLocs > wantFrames {
			t.Fatalf("%d locations for %d frames", gotLocs, wantFrames)
		}
		enc, err := Encode(ev)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		back, err := googlepprof.ParseData(enc)
		if err != nil {
			t.Fatalf("ParseData: %v", err)
		}
		if err := back.CheckValid(); err != nil {
			t.Fatalf("parsed profile invalid: %v", err)
		}
		if len(back.Sample) != len(ev.Samples) {
			t.Fatalf("parsed %d samples, want %d", len(back.Sample), len(ev.Samples))
		}
		for i, s := range back.Sample {
			if s.Value[0] != p.Sample[i].Value[0] || s.Value[1] != p.Sample[i].Value[1] {
				t.Fatalf("sample %d values %v, want %v", i, s.Value, p.Sample[i].Value)
			}
		}
	})
}
