package loader

import (
	"testing"

	"github.com/kprof/kprof/internal/agent/bpf"
)

func TestFitKeepsGapsAndStaysWithinMaxMappings(t *testing.T) {
	tab := &table{key: "t", n: 10}
	small := &table{key: "s", n: 2}
	fp := func(start, end uint64) planned { return planned{m: bpf.Mapping{Start: start, End: end}} }
	rows := func(start, end uint64, t *table) planned {
		return planned{m: bpf.Mapping{Start: start, End: end, RowLen: t.n}, t: t}
	}
	for _, tc := range []struct {
		name string
		max  int
		in   []planned
		want []bpf.Mapping
	}{
		{"contiguous frame-pointer mappings merge, gaps stay for a later dlopen", 8,
			[]planned{fp(0x1000, 0x2000), fp(0x2000, 0x3000), fp(0x5000, 0x6000), rows(0x6000, 0x7000, tab)},
			[]bpf.Mapping{{Start: 0x1000, End: 0x3000}, {Start: 0x5000, End: 0x6000}, {Start: 0x6000, End: 0x7000, RowLen: 10}}},
		{"beyond the maximum, the closest frame-pointer neighbours merge first", 3,
			[]planned{fp(0x1000, 0x2000), fp(0x9000, 0xa000), fp(0xa800, 0xb000), rows(0xc000, 0xd000, tab)},
			[]bpf.Mapping{{Start: 0x1000, End: 0x2000}, {Start: 0x9000, End: 0xb000}, {Start: 0xc000, End: 0xd000, RowLen: 10}}},
		// The smallest table alone on frame pointers is still three mappings: the
		// next gives way too, and the two merge.
		{"then the smallest tables give way", 2,
			[]planned{rows(0x1000, 0x2000, tab), rows(0x3000, 0x4000, small), rows(0x5000, 0x6000, tab)},
			[]bpf.Mapping{{Start: 0x1000, End: 0x4000}, {Start: 0x5000, End: 0x6000, RowLen: 10}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tl := newTestLoader(t, 100, 1, func(c *Config) { c.MaxMappings = tc.max })
			got := tl.fit(tc.in)
			if len(got) != len(tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			for i := range got {
				if got[i].m != tc.want[i] {
					t.Errorf("mapping %d: got %+v, want %+v", i, got[i].m, tc.want[i])
				}
			}
		})
	}
}
