package ledger

import (
	"errors"
	"fmt"

	"github.com/consentledger/consentledger/ledger/storage"
)

// overlay holds state-index and table records that the sequencer has
// written and the store may not have committed yet, and recently written
// ones as a cache (the sequencer is the only writer, so they are current).
// Reads fall through to the store. Writes of one request can be rolled back if the request is
// refused, so a refused request changes nothing.
type overlay struct {
	read    func(key []byte) ([]byte, error) // the store, at a snapshot no older than the last pruning
	vals    map[string]*ovVal
	journal []journalRec // this request's changes, for rollback
	batch   map[string]struct{}
}

type ovVal struct {
	val     []byte // nil: deleted
	batchNo uint64 // the batch that wrote it
}

type journalRec struct {
	key  string
	prev *ovVal // nil: key was not in the overlay
}

func newOverlay() *overlay {
	return &overlay{vals: map[string]*ovVal{}, batch: map[string]struct{}{}}
}

// get returns the value at key, or nil and false if there is none.
func (o *overlay) get(key []byte) ([]byte, bool, error) {
	if v, ok := o.vals[string(key)]; ok {
		return v.val, v.val != nil, nil
	}
	if o.read == nil {
		return nil, false, nil
	}
	v, err := o.read(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read state: %w", err)
	}
	return v, true, nil
}

func (o *overlay) put(key, val []byte, batchNo uint64) {
	k := string(key)
	o.journal = append(o.journal, journalRec{key: k, prev: o.vals[k]})
	o.vals[k] = &ovVal{val: val, batchNo: batchNo}
	o.batch[k] = struct{}{}
}

func (o *overlay) del(key []byte, batchNo uint64) { o.put(key, nil, batchNo) }

// begin starts a request: its changes can be undone with rollback.
func (o *overlay) begin() { o.journal = o.journal[:0] }

// rollback undoes the changes of the current request.
func (o *overlay) rollback() {
	for i := len(o.journal) - 1; i >= 0; i-- {
		r := o.journal[i]
		if r.prev == nil {
			delete(o.vals, r.key)
		} else {
			o.vals[r.key] = r.prev
		}
	}
	o.journal = o.journal[:0]
}

// takeWrites returns this batch's writes (nil value: delete) and starts a new batch.
func (o *overlay) takeWrites() []kv {
	w := make([]kv, 0, len(o.batch))
	for k := range o.batch {
		if v, ok := o.vals[k]; ok {
			w = append(w, kv{key: []byte(k), val: v.val, del: v.val == nil})
		}
	}
	clear(o.batch)
	o.journal = o.journal[:0]
	return w
}

// overlayKeep is how many values the overlay keeps as a cache of recent
// state before prune forgets committed ones.
const overlayKeep = 100_000

// prune forgets values written by batches up to committed (which the store
// holds) once the overlay is larger than overlayKeep: until then it doubles
// as a cache of the state the sequencer reads most.
func (o *overlay) prune(committed uint64) {
	if len(o.vals) <= overlayKeep {
		return
	}
	for k, v := range o.vals {
		if v.batchNo <= committed {
			delete(o.vals, k)
		}
	}
}

// kv is one write of a batch.
type kv struct {
	key, val []byte
	del      bool
}
