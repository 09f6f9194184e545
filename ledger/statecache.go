package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// DefaultStateCache is how many subjects' committed state the ledger keeps
// in memory when Options.StateCache is 0.
const DefaultStateCache = 65536

// stateCache keeps the committed state of recently used subjects in memory,
// so that LookupSubject and SubjectState — read by every decision — answer
// without reading the store.
//
// It never serves a state older than the last acknowledged entry: the
// committer applies each batch's writes to it after the store committed
// them and before it acknowledges the batch (cacheCommitted), all writes of
// one batch under one lock. A reader that missed fills it from a store
// snapshot only if no batch was applied since it read the generation before
// opening that snapshot, so a value read before a commit can never be
// installed after that commit was applied. Whatever one read returns comes
// from one subject's record as of one batch, as a store snapshot would.
type stateCache struct {
	mu      sync.RWMutex
	gen     uint64                    // incremented by every apply and reset
	byTable map[string]*cachedSubject // subject table key ('x' hmac) → subject
	bySID   map[string]*cachedSubject // subject_id → subject
}

// cachedSubject is one subject's records of the state index, as stored.
type cachedSubject struct {
	sid   string
	table string // the subject table key; "" if not known (filled by SubjectState)
	state []byte // the SubjectState record; nil: none
	// sends holds last-send records by their key's suffix after
	// lastSendPrefix: "" the subject's last allowed send, channel byte and
	// purpose one consent's. A nil value is known to be absent; a missing
	// suffix is unknown unless complete.
	sends map[string][]byte
	// complete: every last-send record of the subject is in sends (the
	// subject was created while the cache watched).
	complete bool
	// built is the state LookupSubject returns, decoded from the records
	// above on first use; an apply that changes them clears it. It is built
	// and read under the cache's read lock and cleared under its write lock.
	built atomic.Pointer[builtState]
}

type builtState struct{ st *pb.SubjectState }

// stateCacheMax is the cache's bound in subjects; 0 means no cache.
func (l *Ledger) stateCacheMax() int {
	switch n := l.opts.StateCache; {
	case n < 0:
		return 0
	case n == 0:
		return DefaultStateCache
	default:
		return n
	}
}

// cacheCommitted applies a batch's writes to the state cache if the store
// committed them (err is the commit's error). The committer calls it after
// the store commit and before acknowledging.
func (l *Ledger) cacheCommitted(b *batch, err error) {
	if max := l.stateCacheMax(); max > 0 && err == nil && len(b.writes) > 0 {
		l.states.apply(b.writes, max)
	}
}

// lookupSubjectCached is LookupSubject through the state cache.
func (l *Ledger) lookupSubjectCached(ctx context.Context, id subject.Identifier) (string, *pb.SubjectState, bool, error) {
	tk := tableKey(subject.TableKey(l.keys.SubjectKey, id))
	gen, sid, st, ok := l.states.lookup(tk, "")
	if ok {
		return sid, st, true, nil
	}
	var u *cachedSubject
	var found bool
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(tk)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(raw) <= 32 {
			return fmt.Errorf("subject table row is malformed")
		}
		found = true
		u, err = loadSubject(tx, string(raw[32:]))
		return err
	})
	if err != nil || !found {
		return "", nil, found, err
	}
	u.table = string(tk)
	st, _, err = u.decode()
	if err != nil {
		return "", nil, false, err
	}
	u.built.Store(&builtState{st})
	l.states.install(gen, u, l.stateCacheMax())
	return u.sid, st, true, nil
}

// subjectStateCached is SubjectState through the state cache.
func (l *Ledger) subjectStateCached(ctx context.Context, subjectID string) (*pb.SubjectState, error) {
	gen, _, st, ok := l.states.lookup(nil, subjectID)
	if ok {
		if st == nil {
			return nil, fmt.Errorf("%w: no subject %s", ErrNotFound, subjectID)
		}
		return st, nil
	}
	var u *cachedSubject
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		u, err = loadSubject(tx, subjectID)
		return err
	})
	if err != nil {
		return nil, err
	}
	st, _, err = u.decode()
	if err != nil {
		return nil, err
	}
	u.built.Store(&builtState{st})
	l.states.install(gen, u, l.stateCacheMax())
	if st == nil {
		return nil, fmt.Errorf("%w: no subject %s", ErrNotFound, subjectID)
	}
	return st, nil
}

// loadSubject reads a subject's records from tx: its state and the
// last-send records that readSubject reads.
func loadSubject(tx storage.ReadTx, sid string) (*cachedSubject, error) {
	u := &cachedSubject{sid: sid, sends: map[string][]byte{}}
	raw, err := tx.Get(subjectKey(sid))
	if errors.Is(err, storage.ErrNotFound) {
		return u, nil
	}
	if err != nil {
		return nil, err
	}
	u.state = raw
	st := new(pb.SubjectState)
	if err := proto.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("decode %T: %w", st, err)
	}
	prefix := lastSendPrefix(sid)
	get := func(suffix string) error {
		v, err := tx.Get(append(prefix[:len(prefix):len(prefix)], suffix...))
		if errors.Is(err, storage.ErrNotFound) {
			u.sends[suffix] = nil
			return nil
		}
		u.sends[suffix] = v
		return err
	}
	for _, cs := range st.Consents {
		if err := get(sendSuffix(cs.Channel, cs.Purpose)); err != nil {
			return nil, err
		}
	}
	return u, get("")
}

// sendSuffix is the suffix of lastSendKey after lastSendPrefix.
func sendSuffix(ch pb.Channel, purpose string) string { return string([]byte{byte(ch)}) + purpose }

// view returns the subject's state as readSubject reads it, or false if a
// last-send record it needs is not in the cache. Call it under the cache's
// lock (a read lock will do). The state is shared: callers must not modify
// it.
func (u *cachedSubject) view() (*pb.SubjectState, bool) {
	if b := u.built.Load(); b != nil {
		return b.st, true
	}
	st, known, err := u.decode()
	if err != nil || !known {
		return nil, false // the store read reports an error
	}
	u.built.Store(&builtState{st})
	return st, true
}

// decode builds the state from the records, as readSubject does (nil if
// the subject has no state record); known is false if a last-send record
// it needs is not in the cache.
func (u *cachedSubject) decode() (st *pb.SubjectState, known bool, err error) {
	if u.state == nil {
		return nil, true, nil
	}
	st = new(pb.SubjectState)
	if err := proto.Unmarshal(u.state, st); err != nil {
		return nil, false, fmt.Errorf("decode %T: %w", st, err)
	}
	known = true
	ref := func(suffix string) (*pb.EntryRef, error) {
		v, ok := u.sends[suffix]
		if !ok && !u.complete {
			known = false
		}
		if v == nil {
			return nil, nil
		}
		r := new(pb.EntryRef)
		if err := proto.Unmarshal(v, r); err != nil {
			return nil, fmt.Errorf("decode last send: %w", err)
		}
		return r, nil
	}
	for _, cs := range st.Consents {
		r, err := ref(sendSuffix(cs.Channel, cs.Purpose))
		if err != nil {
			return nil, false, err
		}
		if r != nil {
			cs.LastAllowedSend, cs.LastAllowedSendAt = r, r.RecordedAt
		}
	}
	if st.LastAllowedSend, err = ref(""); err != nil {
		return nil, false, err
	}
	return st, known, nil
}

// lookup returns the cache's generation and, if the subject with table key
// tk (or, if tk is nil, with subject_id sid) is cached whole, its
// subject_id and state (ok).
func (c *stateCache) lookup(tk []byte, sid string) (gen uint64, subjectID string, st *pb.SubjectState, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var u *cachedSubject
	if tk != nil {
		u = c.byTable[string(tk)]
	} else {
		u = c.bySID[sid]
	}
	if u == nil {
		return c.gen, "", nil, false
	}
	// Built under the read lock: no apply changes the records meanwhile.
	st, ok = u.view()
	return c.gen, u.sid, st, ok
}

// install adds u, read from a store snapshot opened after generation gen
// was current, unless a batch was applied since (u may then be stale).
func (c *stateCache) install(gen uint64, u *cachedSubject, max int) {
	if max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	c.init()
	if old := c.bySID[u.sid]; old != nil && u.table == "" {
		u.table = old.table
	}
	c.bySID[u.sid] = u
	if u.table != "" {
		c.byTable[u.table] = u
	}
	c.evict(max)
}

// apply brings the cached subjects up to a committed batch's writes; a
// subject created by the batch is cached whole. An erasure (its table row
// deleted) removes the subject.
func (c *stateCache) apply(writes []kv, max int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.init()
	// Table rows first: the batch may write a new subject's records
	// before or after its row.
	for _, w := range writes {
		if len(w.key) == 0 || w.key[0] != tabTable {
			continue
		}
		tk := string(w.key)
		if w.del {
			if u := c.byTable[tk]; u != nil {
				delete(c.byTable, tk)
				delete(c.bySID, u.sid)
			}
			continue
		}
		if len(w.val) <= 32 {
			continue
		}
		// A row is only ever written for a new subject_id: it has no
		// records yet but those of this batch.
		sid := string(w.val[32:])
		u := c.bySID[sid]
		if u == nil {
			u = &cachedSubject{sid: sid, sends: map[string][]byte{}, complete: true}
			c.bySID[sid] = u
		}
		u.table = tk
		c.byTable[tk] = u
	}
	for _, w := range writes {
		if len(w.key) == 0 {
			continue
		}
		switch w.key[0] {
		case tabSubject:
			if u := c.bySID[string(w.key[1:])]; u != nil {
				u.state = w.val
				u.built.Store(nil)
			}
		case tabLastSend:
			rest := w.key[1:]
			i := bytes.IndexByte(rest, 0)
			if i < 0 {
				continue
			}
			if u := c.bySID[string(rest[:i])]; u != nil {
				u.sends[string(rest[i+1:])] = w.val
				u.built.Store(nil)
			}
		}
	}
	c.evict(max)
}

// reset empties the cache (after RebuildState rewrote the state index).
func (c *stateCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byTable, c.bySID = nil, nil
}

// len returns the number of cached subjects.
func (c *stateCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.bySID)
}

func (c *stateCache) init() {
	if c.bySID == nil {
		c.byTable, c.bySID = map[string]*cachedSubject{}, map[string]*cachedSubject{}
	}
}

// evict drops subjects (in map order: about random) when there are more
// than max, down to seven eighths of max, so that it runs rarely.
func (c *stateCache) evict(max int) {
	if len(c.bySID) <= max {
		return
	}
	keep := max - max/8
	for sid, u := range c.bySID {
		if len(c.bySID) <= keep {
			return
		}
		delete(c.bySID, sid)
		if u.table != "" && c.byTable[u.table] == u {
			delete(c.byTable, u.table)
		}
	}
}
