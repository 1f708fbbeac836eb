package loader

import "container/list"

// table is an unwind table in the kernel's row array: rows [off, off+n).
type table struct {
	key    string
	off, n uint32
	refs   int           // loaded processes using it
	lru    *list.Element // in tables.lru when refs == 0
}

// maxNoRows bounds the remembered files without rows (Go binaries, no CFI).
const maxNoRows = 4096

// tables are the tables in the kernel by file identity, the LRU of those no process
// uses, and the files known to have no table, so that none is built twice while it
// is in the kernel.
type tables struct {
	alloc     *allocator
	byKey     map[string]*table
	lru       *list.List // of *table, least recently released first
	maxCached int
	noRows    map[string]string // key → frame-pointer reason
	rowsInUse uint32            // rows of tables with refs > 0
}

func newTables(capacity uint32, maxCached int) *tables {
	return &tables{
		alloc:     newAllocator(capacity),
		byKey:     make(map[string]*table),
		lru:       list.New(),
		maxCached: maxCached,
		noRows:    make(map[string]string),
	}
}

// get returns the table of key with a reference taken, nil when it is not loaded.
func (ts *tables) get(key string) *table {
	t := ts.byKey[key]
	if t != nil {
		ts.acquire(t)
	}
	return t
}

func (ts *tables) acquire(t *table) {
	if t.refs == 0 {
		ts.lru.Remove(t.lru)
		t.lru = nil
		ts.rowsInUse += t.n
	}
	t.refs++
}

// release drops a reference; a table with none left goes to the LRU, and the
// least recently used is evicted beyond maxCached. It returns the tables evicted.
func (ts *tables) release(t *table) int {
	t.refs--
	if t.refs > 0 {
		return 0
	}
	ts.rowsInUse -= t.n
	t.lru = ts.lru.PushBack(t)
	evicted := 0
	for ts.lru.Len() > ts.maxCached {
		ts.evictOldest()
		evicted++
	}
	return evicted
}

// reserve allocates n rows, evicting unused tables (oldest first) until they fit.
// It returns false when they do not fit with every unused table evicted, and how
// many were evicted.
func (ts *tables) reserve(n uint32) (off uint32, ok bool, evicted int) {
	for {
		if off, ok := ts.alloc.alloc(n); ok {
			return off, true, evicted
		}
		if ts.lru.Len() == 0 {
			return 0, false, evicted
		}
		ts.evictOldest()
		evicted++
	}
}

// add records a table written at rows [off, off+n), with one reference.
func (ts *tables) add(key string, off, n uint32) *table {
	t := &table{key: key, off: off, n: n, refs: 1}
	ts.byKey[key] = t
	ts.rowsInUse += n
	return t
}

func (ts *tables) evictOldest() {
	t := ts.lru.Remove(ts.lru.Front()).(*table)
	t.lru = nil
	delete(ts.byKey, t.key)
	ts.alloc.release(t.off, t.n)
}

// rememberNoRows records that the file of key gets frame pointers for reason.
func (ts *tables) rememberNoRows(key, reason string) {
	if len(ts.noRows) >= maxNoRows {
		clear(ts.noRows)
	}
	ts.noRows[key] = reason
}

// rowsCached is the rows held by tables in the LRU.
func (ts *tables) rowsCached() uint32 { return ts.alloc.used - ts.rowsInUse }
