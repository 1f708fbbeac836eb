package attribute

import (
	"container/list"
	"sync"
	"time"
)

// pidCache is a bounded LRU of Process by pid whose entries expire after ttl, so a reused
// pid or a process that changed cgroup is read again soon.
type pidCache struct {
	max int
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	order   *list.List // of *cacheEntry, most recently used first
	entries map[int32]*list.Element
}

type cacheEntry struct {
	proc Process
	at   time.Time
}

func newPIDCache(max int, ttl time.Duration) *pidCache {
	return &pidCache{max: max, ttl: ttl, now: time.Now, order: list.New(), entries: make(map[int32]*list.Element)}
}

func (c *pidCache) get(pid int32) (Process, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[pid]
	if !ok {
		return Process{}, false
	}
	e := el.Value.(*cacheEntry)
	if c.now().Sub(e.at) >= c.ttl {
		c.order.Remove(el)
		delete(c.entries, pid)
		return Process{}, false
	}
	c.order.MoveToFront(el)
	return e.proc, true
}

func (c *pidCache) put(p Process) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[p.PID]; ok {
		el.Value = &cacheEntry{proc: p, at: c.now()}
		c.order.MoveToFront(el)
		return
	}
	c.entries[p.PID] = c.order.PushFront(&cacheEntry{proc: p, at: c.now()})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).proc.PID)
	}
}

func (c *pidCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
