package ledger

import "sync"

// tileCache keeps complete tiles, which never change, in memory.
type tileCache struct {
	mu  sync.Mutex
	m   map[tileID]*tile
	max int
}

func (c *tileCache) get(id tileID) *tile {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *tileCache) add(t *tile) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[tileID]*tile{}
	}
	if len(c.m) >= c.max {
		for k := range c.m { // evict an arbitrary eighth
			delete(c.m, k)
			if len(c.m) < c.max*7/8 {
				break
			}
		}
	}
	c.m[t.id] = t
}
