// Package storage defines the ordered key-value store that the ledger keeps
// its log, tree tiles and state index in, as transaction closures in the
// manner of golang.org/x/mod/sumdb/storage: a write transaction either
// commits whole and durably, or not at all.
//
// Implementations: badgerstore (the default, on disk), memstore (in memory,
// for tests). storagetest holds the conformance test every implementation
// must pass.
package storage

import (
	"context"
	"errors"
)

// ErrNotFound is returned by Get when a key has no value.
var ErrNotFound = errors.New("storage: key not found")

// Store is an ordered key-value store with atomic write transactions.
type Store interface {
	// View runs fn in a read-only transaction. It sees every write committed
	// before View was called, and may or may not see writes committed while
	// it runs. fn may run for long (the ledger's sequencer reads through one
	// transaction for many batches), so View must not block Update.
	View(ctx context.Context, fn func(ReadTx) error) error
	// Update runs fn in a read-write transaction. If fn returns nil the
	// writes are committed atomically, and durably (synced to stable
	// storage) before Update returns nil. If fn or the commit fails, no
	// write of the transaction is visible, now or after a crash.
	Update(ctx context.Context, fn func(WriteTx) error) error
	// Close releases the store. Transactions must not run during or after it.
	Close() error
}

// ReadTx reads a snapshot.
type ReadTx interface {
	// Get returns a copy of the value at key, or an error wrapping ErrNotFound.
	Get(key []byte) ([]byte, error)
	// Scan calls fn for each key in [start, end) in ascending byte order; an
	// empty end means no upper bound. key and value are valid only during
	// the call. A non-nil error from fn stops the scan and is returned.
	Scan(start, end []byte, fn func(key, value []byte) error) error
}

// WriteTx reads and writes. Reads see the transaction's own writes.
type WriteTx interface {
	ReadTx
	// Set stores value at key. The store may keep key and value until the
	// transaction ends, so the caller must not modify them before then.
	Set(key, value []byte) error
	// Delete removes key; deleting an absent key is not an error.
	Delete(key []byte) error
}

// PrefixEnd returns the smallest key greater than every key with the given
// prefix, for use as Scan's end; nil if there is none (all 0xff).
func PrefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}
