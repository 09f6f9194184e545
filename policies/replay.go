package policies

import (
	"context"
	"sync"
)

// replayCacheSize bounds the compiled sets [Replay] keeps: an audit replays
// many decisions made by few policies.
const replayCacheSize = 16

var replays = &setCache{max: replayCacheSize}

// Replay evaluates a recorded input with a recorded policy set and returns
// the decision, so that anyone holding the files of a PolicyPublished entry
// and the input of a SendDecision entry can check that the recorded result
// follows. The set is compiled as by [Compile] (its tests are not run) and
// kept in a small cache keyed by [Digest]. Replay is safe for concurrent use.
func Replay(ctx context.Context, files []File, input []byte) (Decision, error) {
	digest := Digest(files)
	s := replays.get(digest)
	if s == nil {
		var err error
		if s, err = Compile(ctx, files); err != nil {
			return Decision{}, err
		}
		replays.put(s)
	}
	return s.Decide(ctx, input)
}

// setCache is a least-recently-used cache of compiled sets by digest.
type setCache struct {
	mu   sync.Mutex
	max  int
	sets []*Set // most recently used last
}

func (c *setCache) get(digest string) *Set {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, s := range c.sets {
		if s.digest == digest {
			c.sets = append(append(c.sets[:i:i], c.sets[i+1:]...), s)
			return s
		}
	}
	return nil
}

func (c *setCache) put(s *Set) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.sets {
		if t.digest == s.digest {
			return
		}
	}
	if len(c.sets) == c.max {
		c.sets = append(c.sets[:0:0], c.sets[1:]...)
	}
	c.sets = append(c.sets, s)
}
