package loader

import "slices"

// extent is a run of rows [off, off+n).
type extent struct{ off, n uint32 }

// allocator hands out extents of a row array of a fixed capacity, first fit. Free
// extents are kept sorted by offset and merged with their neighbours.
type allocator struct {
	capacity uint32
	free     []extent
	used     uint32
}

func newAllocator(capacity uint32) *allocator {
	a := &allocator{capacity: capacity}
	if capacity > 0 {
		a.free = []extent{{0, capacity}}
	}
	return a
}

// alloc returns the offset of n free contiguous rows; false when no free extent is
// that large.
func (a *allocator) alloc(n uint32) (uint32, bool) {
	if n == 0 {
		return 0, false
	}
	for i, e := range a.free {
		if e.n < n {
			continue
		}
		if e.n == n {
			a.free = slices.Delete(a.free, i, i+1)
		} else {
			a.free[i] = extent{e.off + n, e.n - n}
		}
		a.used += n
		return e.off, true
	}
	return 0, false
}

// release gives back an extent alloc returned.
func (a *allocator) release(off, n uint32) {
	if n == 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(a.free, off, func(e extent, off uint32) int {
		switch {
		case e.off < off:
			return -1
		case e.off > off:
			return 1
		}
		return 0
	})
	a.free = slices.Insert(a.free, i, extent{off, n})
	// Merge with the next, then the previous extent.
	if i+1 < len(a.free) && a.free[i].off+a.free[i].n == a.free[i+1].off {
		a.free[i].n += a.free[i+1].n
		a.free = slices.Delete(a.free, i+1, i+2)
	}
	if i > 0 && a.free[i-1].off+a.free[i-1].n == a.free[i].off {
		a.free[i-1].n += a.free[i].n
		a.free = slices.Delete(a.free, i, i+1)
	}
	a.used -= n
}

// largest is the size of the largest free extent.
func (a *allocator) largest() uint32 {
	var m uint32
	for _, e := range a.free {
		m = max(m, e.n)
	}
	return m
}
