package verifier

import (
	"context"
	"sync"

	"github.com/consentledger/consentledger/policies"
)

// compiledSets caches compiled policy sets by digest, across audits, as
// policies.Replay does: a log holds few policies, and compiling one takes
// milliseconds. The digest is recomputed from the files before a set is
// looked up, so a digest names exactly one set of files.
var compiledSets struct {
	sync.Mutex
	sets  map[string]*policies.Set
	order []string // oldest first
}

const compiledSetsMax = 16

func compiled(ctx context.Context, digest string, files []policies.File) (*policies.Set, error) {
	c := &compiledSets
	c.Lock()
	set := c.sets[digest]
	c.Unlock()
	if set != nil {
		return set, nil
	}
	set, err := policies.Compile(ctx, files)
	if err != nil {
		return nil, err
	}
	c.Lock()
	defer c.Unlock()
	if c.sets == nil {
		c.sets = map[string]*policies.Set{}
	}
	if _, ok := c.sets[digest]; !ok {
		if len(c.order) == compiledSetsMax {
			delete(c.sets, c.order[0])
			c.order = c.order[1:]
		}
		c.sets[digest] = set
		c.order = append(c.order, digest)
	}
	return set, nil
}
