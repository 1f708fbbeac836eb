//go:build linux

package symbolize

import "testing"

// A table one open Batch holds is found by every other Batch, even after the cache
// evicted it, and is let go once the last Batch holding it is closed.
func TestOpenBatchesShareTheTablesTheyHold(t *testing.T) {
	s := newSymbolizer(t, Config{MaxFiles: 1})
	one, two := start(t, "go-1"), start(t, "go-2")
	observe(t, s, one.pid)
	observe(t, s, two.pid)
	stackOne := append(one.report("leaf"), one.report("ret")...)
	stackTwo := append(two.report("leaf"), two.report("ret")...)

	first, second := s.NewBatch(), s.NewBatch()
	wantFrames(t, first.User(one.pid, addrsOf(stackOne)), stackOne)
	wantFrames(t, second.User(two.pid, addrsOf(stackTwo)), stackTwo) // evicts go-1 from the cache
	read := s.Stats().CacheMisses
	for _, b := range []*Batch{first, second} {
		wantFrames(t, b.User(one.pid, addrsOf(stackOne)), stackOne)
		wantFrames(t, b.User(two.pid, addrsOf(stackTwo)), stackTwo)
	}
	if st := s.Stats(); st.CacheMisses != read || st.TablesHeld != 2 {
		t.Errorf("with both tables held: %d more reads, TablesHeld %d; want no read and 2 held", st.CacheMisses-read, st.TablesHeld)
	}

	first.Close()
	first.Close() // idempotent
	if st := s.Stats(); st.TablesHeld != 2 {
		t.Errorf("after the first Batch closed: TablesHeld %d, want 2 (the second holds both)", st.TablesHeld)
	}
	second.Close()
	if st := s.Stats(); st.TablesHeld != 0 {
		t.Errorf("after both closed: TablesHeld %d, want 0", st.TablesHeld)
	}
	// The cache holds go-2 only now: go-1's table is read again.
	read = s.Stats().CacheMisses
	wantFrames(t, s.User(one.pid, addrsOf(stackOne)), stackOne)
	if st := s.Stats(); st.CacheMisses != read+1 {
		t.Errorf("go-1 after every Batch closed: %d reads, want 1 (nothing holds its table)", st.CacheMisses-read)
	}
}
