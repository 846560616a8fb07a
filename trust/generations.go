package trust

import "sync"

// generations is a bounded map for what a Verifier remembers to save an
// ECDSA verification: two generations of at most half the bound each; a
// put into a full current generation drops the old one whole. Something
// forgotten costs only a verification again. Safe for concurrent use.
type generations[K comparable, V any] struct {
	half int // entries per generation

	mu       sync.Mutex // guards cur and old
	cur, old map[K]V
}

func newGenerations[K comparable, V any](max int) generations[K, V] {
	return generations[K, V]{half: max / 2}
}

func (g *generations[K, V]) reset() {
	g.mu.Lock()
	g.cur, g.old = nil, nil
	g.mu.Unlock()
}

func (g *generations[K, V]) get(k K) (V, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.old[k]
	return v, ok
}

func (g *generations[K, V]) put(k K, v V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.putLocked(k, v)
}

// putAll puts every ks[i] with vs[i], under one lock.
func (g *generations[K, V]) putAll(ks []K, vs []V) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for i, k := range ks {
		g.putLocked(k, vs[i])
	}
}

func (g *generations[K, V]) putLocked(k K, v V) {
	if g.cur == nil || len(g.cur) >= g.half {
		g.old, g.cur = g.cur, make(map[K]V)
	}
	g.cur[k] = v
}
