package pprof

import (
	"testing"

	googlepprof "github.com/google/pprof/profile"

	"github.com/kprof/kprof/internal/agent/profile/profiletest"
)

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
		ev := profiletest.EventFromBytes(data)
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
