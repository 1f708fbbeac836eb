package symbolize

import (
	"slices"
	"testing"
)

func TestLRUDropsTheLeastRecentlyUsed(t *testing.T) {
	cases := []struct {
		name    string
		ops     []string // "+k" put, "?k" get, "-k" remove
		want    []string // keys, most recently used first
		evicted uint64
	}{
		{name: "entries within the bound are kept", ops: []string{"+a", "+b"}, want: []string{"b", "a"}},
		{name: "the oldest goes first", ops: []string{"+a", "+b", "+c"}, want: []string{"c", "b"}, evicted: 1},
		{name: "a get makes an entry recent", ops: []string{"+a", "+b", "?a", "+c"}, want: []string{"c", "a"}, evicted: 1},
		{name: "a put of a known key replaces it without eviction", ops: []string{"+a", "+b", "+a"}, want: []string{"a", "b"}},
		{name: "a removed entry is not counted as evicted", ops: []string{"+a", "+b", "-a", "+c"}, want: []string{"c", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newLRU[string, int](2)
			for i, op := range tc.ops {
				k := op[1:]
				switch op[0] {
				case '+':
					c.put(k, i)
				case '?':
					c.get(k)
				case '-':
					c.remove(k)
				}
			}
			var got []string
			c.each(func(k string, _ int) bool { got = append(got, k); return true })
			if !slices.Equal(got, tc.want) || c.evicted != tc.evicted || c.len() != len(tc.want) {
				t.Errorf("keys %v evicted %d len %d; want %v evicted %d", got, c.evicted, c.len(), tc.want, tc.evicted)
			}
		})
	}
}

func TestSizedLRUKeepsItsBytesWithinTheBound(t *testing.T) {
	cases := []struct {
		name    string
		puts    []int // sizes, put under keys "0", "1", ...
		want    []string
		bytes   int64
		evicted uint64
	}{
		{name: "entries within the bytes are kept", puts: []int{4, 6}, want: []string{"1", "0"}, bytes: 10},
		{name: "the oldest go until the bytes fit", puts: []int{4, 4, 8}, want: []string{"2"}, bytes: 8, evicted: 2},
		{name: "a value over the bound alone is not stored and evicts nothing", puts: []int{4, 11}, want: []string{"0"}, bytes: 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newSizedLRU[string, int](10, 10, func(v int) int64 { return int64(v) })
			for i, n := range tc.puts {
				stored := c.put(string(rune('0'+i)), n)
				if stored != (n <= 10) {
					t.Errorf("put of size %d stored %v", n, stored)
				}
			}
			var got []string
			c.each(func(k string, _ int) bool { got = append(got, k); return true })
			if !slices.Equal(got, tc.want) || c.bytes != tc.bytes || c.evicted != tc.evicted {
				t.Errorf("keys %v bytes %d evicted %d; want %v bytes %d evicted %d", got, c.bytes, c.evicted, tc.want, tc.bytes, tc.evicted)
			}
		})
	}
}
