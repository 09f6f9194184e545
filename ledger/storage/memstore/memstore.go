// Package memstore is an in-memory storage.Store for tests. It is not
// durable: everything is lost when the process ends.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/consentledger/consentledger/ledger/storage"
)

// Store is an in-memory storage.Store. The zero value is not usable; call New.
type Store struct {
	mu     sync.RWMutex
	data   map[string][]byte
	closed bool
}

// New returns an empty in-memory store.
func New() *Store { return &Store{data: map[string][]byte{}} }

var errClosed = fmt.Errorf("memstore: store is closed")

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	closed := s.closed
	s.mu.RUnlock()
	if closed {
		return errClosed
	}
	return fn(&tx{s: s, locked: false})
}

// Update implements storage.Store. Writes are buffered and applied only if fn
// returns nil.
func (s *Store) Update(ctx context.Context, fn func(storage.WriteTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	t := &tx{s: s, writes: map[string]*[]byte{}, locked: true}
	if err := fn(t); err != nil {
		return err
	}
	for k, v := range t.writes {
		if v == nil {
			delete(s.data, k)
		} else {
			s.data[k] = *v
		}
	}
	return nil
}

// Close implements storage.Store.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// tx is a transaction. A read-only one (locked false) takes the read lock
// for each call, so a long View never blocks Update; a write transaction
// runs under the store's write lock.
type tx struct {
	s      *Store
	writes map[string]*[]byte // nil value: deleted
	locked bool
}

func (t *tx) rlock() func() {
	if t.locked {
		return func() {}
	}
	t.s.mu.RLock()
	return t.s.mu.RUnlock
}

func (t *tx) Get(key []byte) ([]byte, error) {
	if t.writes != nil {
		if v, ok := t.writes[string(key)]; ok {
			if v == nil {
				return nil, fmt.Errorf("get %x: %w", key, storage.ErrNotFound)
			}
			return bytes.Clone(*v), nil
		}
	}
	unlock := t.rlock()
	v, ok := t.s.data[string(key)]
	unlock()
	if !ok {
		return nil, fmt.Errorf("get %x: %w", key, storage.ErrNotFound)
	}
	return bytes.Clone(v), nil
}

func (t *tx) Scan(start, end []byte, fn func(key, value []byte) error) error {
	merged := map[string][]byte{}
	in := func(k string) bool {
		return k >= string(start) && (len(end) == 0 || k < string(end))
	}
	unlock := t.rlock()
	for k, v := range t.s.data {
		if in(k) {
			merged[k] = v
		}
	}
	unlock()
	for k, v := range t.writes {
		if !in(k) {
			continue
		}
		if v == nil {
			delete(merged, k)
		} else {
			merged[k] = *v
		}
	}
	keys := make([]string, 0, len(merged))
	for k := range merged {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if err := fn([]byte(k), merged[k]); err != nil {
			return err
		}
	}
	return nil
}

func (t *tx) Set(key, value []byte) error {
	v := bytes.Clone(value)
	if v == nil {
		v = []byte{}
	}
	t.writes[string(key)] = &v
	return nil
}

func (t *tx) Delete(key []byte) error {
	t.writes[string(key)] = nil
	return nil
}
