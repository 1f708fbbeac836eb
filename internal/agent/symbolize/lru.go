package symbolize

import "container/list"

// lru is a map bounded by entry count, and optionally by the sum of its values' sizes,
// that drops the least recently used entries. It is not safe for concurrent use; the
// Symbolizer guards it.
type lru[K comparable, V any] struct {
	max     int
	order   *list.List // of *lruEntry[K, V], most recently used first
	entries map[K]*list.Element
	// evicted counts entries dropped to stay within the bounds.
	evicted uint64
	// maxBytes bounds bytes, the sum of size(v) over the entries; 0 means no bound.
	maxBytes int64
	bytes    int64
	size     func(V) int64
}

type lruEntry[K comparable, V any] struct {
	key  K
	val  V
	size int64
}

func newLRU[K comparable, V any](max int) *lru[K, V] {
	return &lru[K, V]{max: max, order: list.New(), entries: make(map[K]*list.Element)}
}

// newSizedLRU returns an lru that also keeps the sum of size(v) within maxBytes.
func newSizedLRU[K comparable, V any](max int, maxBytes int64, size func(V) int64) *lru[K, V] {
	c := newLRU[K, V](max)
	c.maxBytes, c.size = maxBytes, size
	return c
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

// put sets k to v, marks it most recently used and evicts the least recently used
// entries beyond the bounds. A value larger than maxBytes on its own is not stored (an
// older value of k is dropped): put reports whether v was stored.
func (c *lru[K, V]) put(k K, v V) bool {
	var n int64
	if c.size != nil {
		n = c.size(v)
	}
	if c.maxBytes > 0 && n > c.maxBytes {
		c.remove(k)
		return false
	}
	if el, ok := c.entries[k]; ok {
		e := el.Value.(*lruEntry[K, V])
		c.bytes += n - e.size
		e.val, e.size = v, n
		c.order.MoveToFront(el)
	} else {
		c.entries[k] = c.order.PushFront(&lruEntry[K, V]{key: k, val: v, size: n})
		c.bytes += n
	}
	for c.order.Len() > c.max || (c.maxBytes > 0 && c.bytes > c.maxBytes) {
		c.remove(c.order.Back().Value.(*lruEntry[K, V]).key)
		c.evicted++
	}
	return true
}

func (c *lru[K, V]) remove(k K) {
	if el, ok := c.entries[k]; ok {
		c.order.Remove(el)
		delete(c.entries, k)
		c.bytes -= el.Value.(*lruEntry[K, V]).size
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
