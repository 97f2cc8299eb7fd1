package worker

import (
	"container/list"
	"sync"
)

// Cache is a bounded least-recently-used cache of translations: sermons
// and lectures repeat phrases ("Let us pray"), and each is translated once
// per language. It is safe for concurrent use.
type Cache struct {
	size int

	mu    sync.Mutex
	order *list.List // front: most recent
	items map[cacheKey]*list.Element
}

type cacheKey struct {
	pair Pair
	text string
}

type cacheEntry struct {
	key cacheKey
	val string
}

// NewCache returns a Cache of at most size entries (0 disables it).
func NewCache(size int) *Cache {
	return &Cache{size: size, order: list.New(), items: make(map[cacheKey]*list.Element)}
}

// Get returns the cached translation of text for a pair.
func (c *Cache) Get(p Pair, text string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[cacheKey{p, text}]
	if !ok {
		return "", false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cacheEntry).val, true
}

// Put stores a translation, evicting the least recently used beyond size.
func (c *Cache) Put(p Pair, text, val string) {
	if c.size <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	k := cacheKey{p, text}
	if e, ok := c.items[k]; ok {
		e.Value.(*cacheEntry).val = val
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&cacheEntry{k, val})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*cacheEntry).key)
	}
}

// Len returns the number of cached translations.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
