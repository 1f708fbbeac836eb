package symbolize

import "container/list"

// lru is a map bounded by entry count that drops the least recently used entry. It is
// not safe for concurrent use; the Symbolizer guards it.
type lru[K comparable, V any] struct {
	max     int
	order   *list.List // of *lruEntry[K, V], most recently used first
	entries map[K]*list.Element
	// evicted counts entries dropped to stay within max.
	evicted uint64
}

type lruEntry[K comparable, V any] struct {
	key K
	val V
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), entries: make(map[K]*list.Element)}
}

// get returns the value of k and marks it most recently used.
func (c *lru[K, V]) get(k K) (V, bool) {
	el, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[K, V]).val, true
}

// peek returns the value of k without touching its recency.
func (c *lru[K, V]) peek(k K) (V, bool) {
	el, ok := c.entries[k]
	if !ok {
		var zero V
		return zero, false
	}
	return el.Value.(*lruEntry[K, V]).val, true
}

// put sets k to v, marks it most recently used and evicts beyond max.
func (c *lru[K, V]) put(k K, v V) {
	if el, ok := c.entries[k]; ok {
		el.Value.(*lruEntry[K, V]).val = v
		c.order.MoveToFront(el)
		return
	}
	c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.entries, last.Value.(*lruEntry[K, V]).key)
		c.evicted++
	}
}

func (c *lru[K, V]) remove(k K) {
	if el, ok := c.entries[k]; ok {
		c.order.Remove(el)
		delete(c.entries, k)
	}
}

func (c *lru[K, V]) len() int { return c.order.Len() }

// each calls f for every entry, most recently used first, until f returns false.
func (c *lru[K, V]) each(f func(K, V) bool) {
	for el := c.order.Front(); el != nil; el = el.Next() {
		e := el.Value.(*lruEntry[K, V])
		if !f(e.key, e.val) {
			return
		}
	}
}
