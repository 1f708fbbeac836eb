package symbolize

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

func TestParsePerfMap(t *testing.T) {
	cases := []struct {
		name     string
		data     string
		max      int
		want     []perfSym // seq counted from 0
		consumed int
		skipped  int
		full     bool
	}{
		{
			name: "lines of START SIZE name are read, names keeping their text",
			data: "3192f0ad75be 26 JS:~hotLoopKprof /tmp/hot.js:1:22\n18c4000 300 Builtin:DeoptimizationEntry_Eager\n",
			max:  10,
			want: []perfSym{
				{start: 0x3192f0ad75be, end: 0x3192f0ad75be + 0x26, seq: 0, name: "JS:~hotLoopKprof /tmp/hot.js:1:22"},
				{start: 0x18c4000, end: 0x18c4300, seq: 1, name: "Builtin:DeoptimizationEntry_Eager"},
			},
		},
		{
			name: "a 0x prefix, CRLF and trailing blanks are accepted",
			data: "0x1000 0x10 [unknown] stub\r\n2000 8 f  \t\n",
			max:  10,
			want: []perfSym{{start: 0x1000, end: 0x1010, seq: 0, name: "[unknown] stub"}, {start: 0x2000, end: 0x2008, seq: 1, name: "f"}},
		},
		{
			name: "a line still being written is left for the next read",
			data: "1000 10 done\n2000 10 half",
			max:  10,
			want: []perfSym{{start: 0x1000, end: 0x1010, name: "done"}},
			// consumed is set below from the data
		},
		{
			name:    "malformed, empty-named, zero-sized and overflowing lines are skipped",
			data:    "zz 10 a\n1000 zz b\n1000 10\n1000 0 c\nffffffffffffffff 2 d\n\n1000 10 ok\n",
			max:     10,
			want:    []perfSym{{start: 0x1000, end: 0x1010, seq: 0, name: "ok"}},
			skipped: 5,
		},
		{
			name:    "an overlong line is skipped",
			data:    "1000 10 " + strings.Repeat("x", maxPerfMapLine) + "\n2000 10 ok\n",
			max:     10,
			want:    []perfSym{{start: 0x2000, end: 0x2010, seq: 0, name: "ok"}},
			skipped: 1,
		},
		{
			name:     "reading stops at the bound on symbols",
			data:     "1000 10 a\n2000 10 b\n3000 10 c\n",
			max:      2,
			want:     []perfSym{{start: 0x1000, end: 0x1010, seq: 0, name: "a"}, {start: 0x2000, end: 0x2010, seq: 1, name: "b"}},
			consumed: len("1000 10 a\n2000 10 b\n"),
			full:     true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := parsePerfMap([]byte(tc.data), 0, tc.max)
			consumed := tc.consumed
			if consumed == 0 {
				consumed = strings.LastIndexByte(tc.data, '\n') + 1
			}
			if r.consumed != consumed || r.skipped != tc.skipped || r.full != tc.full {
				t.Errorf("consumed %d skipped %d full %v, want %d %d %v", r.consumed, r.skipped, r.full, consumed, tc.skipped, tc.full)
			}
			if fmt.Sprint(r.syms) != fmt.Sprint(tc.want) {
				t.Errorf("symbols\n got %+v\nwant %+v", r.syms, tc.want)
			}
		})
	}
}

func TestPerfTableLookup(t *testing.T) {
	var tab perfTable
	read := func(data string) {
		r := parsePerfMap([]byte(data), tab.seq, 100)
		tab.add(r, r.consumed)
	}
	read("1000 100 outer\n1040 10 inner\n3000 10 old\n")
	read("3000 20 new\n5000 10 far\n")
	cases := []struct {
		name string
		pc   uint64
		want string
	}{
		{"an address in one function is named by it", 0x1010, "outer"},
		{"code inside other code is named by the later line", 0x1044, "inner"},
		{"after the inner code the outer one names the address again", 0x1060, "outer"},
		{"code replaced at the same address is named by the later line, in a later read", 0x3004, "new"},
		{"the replacing code's own size counts", 0x3018, "new"},
		{"an address past every line is not named", 0x6000, ""},
		{"an address between lines is not named", 0x2000, ""},
		{"an address before every line is not named", 0x10, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tab.lookup(tc.pc)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("lookup(%#x) = %q, %v; want %q", tc.pc, got, ok, tc.want)
			}
		})
	}
	if tab.len() != 4 {
		t.Errorf("%d symbols kept, want 4 (old replaced by new)", tab.len())
	}
}

// FuzzParsePerfMap feeds the perf map parser what a process may write: it must not
// panic, stay within its bounds, and give symbols a lookup finds.
func FuzzParsePerfMap(f *testing.F) {
	f.Add([]byte("3192f0ad75be 26 JS:~hotLoopKprof /tmp/hot.js:1:22\n18c4000 300 Builtin:X\n"), uint8(10))
	f.Add([]byte("1000 10 a\n1000 20 b\n1008 4 c\n"), uint8(2))
	f.Add([]byte("ffffffffffffffff 1 x\n0 ffffffffffffffff y\n"), uint8(5))
	f.Add([]byte("0x 0x z\n  \t\n1 1 \n"), uint8(5))
	f.Add([]byte("1000 10 no newline"), uint8(5))
	f.Fuzz(func(t *testing.T, data []byte, max uint8) {
		r := parsePerfMap(data, 0, int(max))
		if r.consumed < 0 || r.consumed > len(data) || (r.consumed > 0 && data[r.consumed-1] != '\n') {
			t.Fatalf("consumed %d of %d bytes, not at a line end", r.consumed, len(data))
		}
		if len(r.syms) > int(max) {
			t.Fatalf("%d symbols, bound %d", len(r.syms), max)
		}
		for _, s := range r.syms {
			if s.end <= s.start || s.name == "" || strings.ContainsAny(s.name, "\n") || !bytes.Contains(data, []byte(s.name)) {
				t.Fatalf("bad symbol %+v", s)
			}
		}
		var tab perfTable
		tab.add(r, r.consumed)
		for _, s := range r.syms {
			if _, ok := tab.lookup(s.start); !ok && tab.len() < maxPerfMapScan {
				t.Fatalf("symbol %+v not found at its start", s)
			}
		}
	})
}
