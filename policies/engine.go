package policies

import "sync/atomic"

// Engine holds the active policy set. Readers take the set with Current and
// evaluate against it; publishing replaces it with Swap. A decision made
// with the set returned by Current is made entirely by that set, however
// many swaps happen meanwhile, so each decision can record the digest that
// made it. Engine is safe for concurrent use; its zero value holds no set.
type Engine struct {
	active atomic.Pointer[Set]
}

// NewEngine returns an Engine whose active set is s.
func NewEngine(s *Set) *Engine {
	e := new(Engine)
	e.active.Store(s)
	return e
}

// Current returns the active set, or nil if none was ever activated.
func (e *Engine) Current() *Set { return e.active.Load() }

// Swap atomically activates s and returns the set it replaces. s must be a
// set that passed [Check]; Swap panics if s is nil.
func (e *Engine) Swap(s *Set) (old *Set) {
	if s == nil {
		panic("policies: Engine.Swap with a nil set")
	}
	return e.active.Swap(s)
}
