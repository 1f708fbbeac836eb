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
