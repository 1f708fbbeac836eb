package loader

import "testing"

func TestAllocatorFirstFitReusesAndMergesFreedExtents(t *testing.T) {
	a := newAllocator(100)
	off := func(n uint32) uint32 {
		t.Helper()
		o, ok := a.alloc(n)
		if !ok {
			t.Fatalf("alloc(%d) failed with free %v", n, a.free)
		}
		return o
	}
	x, y, z := off(30), off(30), off(30)
	if x != 0 || y != 30 || z != 60 {
		t.Fatalf("offsets %d %d %d, want 0 30 60", x, y, z)
	}
	if _, ok := a.alloc(11); ok {
		t.Fatal("alloc(11) succeeded with 10 rows free")
	}
	a.release(y, 30)
	if got := off(20); got != 30 {
		t.Errorf("first fit gave %d, want 30 (the freed extent)", got)
	}
	a.release(30, 20)
	a.release(x, 30)
	a.release(z, 30)
	if len(a.free) != 1 || a.free[0] != (extent{0, 100}) || a.used != 0 {
		t.Errorf("after releasing everything: free %v used %d, want one extent of 100", a.free, a.used)
	}
	if _, ok := a.alloc(0); ok {
		t.Error("alloc(0) succeeded")
	}
}

func TestTablesEvictTheLeastRecentlyReleasedWhenRoomIsNeeded(t *testing.T) {
	ts := newTables(100, 10)
	reserve := func(key string, n uint32) *table {
		t.Helper()
		off, ok, _ := ts.reserve(n)
		if !ok {
			t.Fatalf("reserve(%d) failed", n)
		}
		return ts.add(key, off, n)
	}
	a, b, c := reserve("a", 40), reserve("b", 40), reserve("c", 20)
	ts.release(b)
	ts.release(a)
	if ts.rowsInUse != 20 || ts.rowsCached() != 80 {
		t.Fatalf("rows in use %d cached %d, want 20 and 80", ts.rowsInUse, ts.rowsCached())
	}
	if _, ok, ev := ts.reserve(40); !ok || ev != 1 || ts.byKey["b"] != nil || ts.byKey["a"] == nil {
		t.Fatalf("reserve(40): ok %v evicted %d; want b (released first) evicted, a kept", ok, ev)
	}
	if _, ok, _ := ts.reserve(50); ok {
		t.Fatal("reserve(50) succeeded: c is in use and a's 40 rows are the only ones to free")
	}
	if ts.get("c") != c || c.refs != 2 {
		t.Errorf("get(c) did not take a reference: refs %d", c.refs)
	}
}

func TestTablesBoundTheLRU(t *testing.T) {
	ts := newTables(100, 2)
	var evicted int
	for _, k := range []string{"a", "b", "c"} {
		off, _, _ := ts.reserve(10)
		evicted += ts.release(ts.add(k, off, 10))
	}
	if evicted != 1 || ts.lru.Len() != 2 || ts.byKey["a"] != nil {
		t.Errorf("evicted %d, LRU %d tables, a present %v: want the oldest of three evicted beyond 2", evicted, ts.lru.Len(), ts.byKey["a"] != nil)
	}
}
