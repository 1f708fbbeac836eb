package profile

import (
	"slices"
	"testing"
)

func TestInlineGroups(t *testing.T) {
	user := func(addr uint64, fn string) Frame { return Frame{Address: addr, Function: fn} }
	kernel := func(addr uint64) Frame { return Frame{Address: addr, Kernel: true} }
	for _, tc := range []struct {
		name   string
		frames []Frame
		want   []int // the length of each group, in order
	}{
		{"an empty stack has no group", nil, nil},
		{"frames of distinct addresses are one group each", []Frame{user(1, "a"), user(2, "b"), user(3, "c")}, []int{1, 1, 1}},
		{"a run of one address is one group, innermost first", []Frame{user(1, "inlined"), user(1, "caller"), user(2, "main")}, []int{2, 1}},
		{"a kernel and a user frame of one address are two groups", []Frame{kernel(1), user(1, "a")}, []int{1, 1}},
		{"the same address apart is two groups", []Frame{user(1, "a"), user(2, "b"), user(1, "a")}, []int{1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []int
			var flat []Frame
			for g := range InlineGroups(tc.frames) {
				got = append(got, len(g))
				flat = append(flat, g...)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("group lengths %v, want %v", got, tc.want)
			}
			if !slices.Equal(flat, tc.frames) {
				t.Errorf("groups cover %v, want every frame in order %v", flat, tc.frames)
			}
		})
	}
	t.Run("stopping early yields nothing more", func(t *testing.T) {
		n := 0
		for range InlineGroups([]Frame{user(1, "a"), user(2, "b")}) {
			n++
			break
		}
		if n != 1 {
			t.Errorf("%d groups before break, want 1", n)
		}
	})
}
