// Package badgerstore is the on-disk storage.Store, on Badger
// (github.com/dgraph-io/badger/v4) with synchronous writes: a committed
// transaction survives kill -9 and power loss.
package badgerstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
	"github.com/dgraph-io/badger/v4/table"
	"github.com/dgraph-io/ristretto/v2/z"

	"github.com/consentledger/consentledger/ledger/storage"
)

// Options configures Open. The zero value means the documented defaults.
type Options struct {
	// InMemory keeps everything in memory (for tests); Dir is ignored.
	InMemory bool
	// BlockCacheBytes is Badger's block cache size; 0 means 256 MiB.
	BlockCacheBytes int64
}

// Store is a storage.Store on a Badger database.
type Store struct {
	db *badger.DB
}

// Open opens (creating if needed) the Badger database in dir.
func Open(dir string, opts Options) (*Store, error) {
	o := badger.DefaultOptions(dir).
		WithSyncWrites(true).
		WithDetectConflicts(false).
		WithNumVersionsToKeep(1).
		// A damaged block is an error when read, never wrong bytes.
		WithChecksumVerificationMode(options.OnBlockRead).
		WithLogger(nil)
	if opts.InMemory {
		o = o.WithDir("").WithValueDir("").WithInMemory(true)
	}
	if opts.BlockCacheBytes > 0 {
		o = o.WithBlockCacheSize(opts.BlockCacheBytes)
	}
	db, err := badger.Open(o)
	if err != nil {
		return nil, fmt.Errorf("open badger database in %s: %w", dir, err)
	}
	return &Store{db: db}, nil
}

// DB returns the underlying Badger database (for backup and maintenance).
func (s *Store) DB() *badger.DB { return s.db }

// View implements storage.Store.
func (s *Store) View(ctx context.Context, fn func(storage.ReadTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.View(func(txn *badger.Txn) error { return fn(tx{txn}) })
}

// Update implements storage.Store.
func (s *Store) Update(ctx context.Context, fn func(storage.WriteTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	txn := s.db.NewTransaction(true)
	defer txn.Discard()
	if err := fn(tx{txn}); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("commit badger transaction: %w", err)
	}
	return nil
}

// Close implements storage.Store.
func (s *Store) Close() error { return s.db.Close() }

type tx struct{ txn *badger.Txn }

func (t tx) Get(key []byte) ([]byte, error) {
	item, err := t.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, fmt.Errorf("get %x: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %x: %w", key, err)
	}
	v, err := item.ValueCopy(nil)
	if err != nil {
		return nil, fmt.Errorf("read value of %x: %w", key, err)
	}
	return v, nil
}

func (t tx) Scan(start, end []byte, fn func(key, value []byte) error) error {
	it := t.txn.NewIterator(badger.IteratorOptions{PrefetchValues: false})
	defer it.Close()
	for it.Seek(start); it.Valid(); it.Next() {
		item := it.Item()
		k := item.Key()
		if len(end) > 0 && bytes.Compare(k, end) >= 0 {
			return nil
		}
		err := item.Value(func(v []byte) error { return fn(k, v) })
		if err != nil {
			return err
		}
	}
	return nil
}

func (t tx) Set(key, value []byte) error {
	if err := t.txn.Set(key, value); err != nil {
		return fmt.Errorf("set %x: %w", key, err)
	}
	return nil
}

func (t tx) Delete(key []byte) error {
	if err := t.txn.Delete(key); err != nil {
		return fmt.Errorf("delete %x: %w", key, err)
	}
	return nil
}

// CheckTables opens every table file (*.sst) that the database's manifest
// lists, on its own, before Badger does: Badger opens tables in background
// goroutines and panics, killing the process, on a truncated or damaged
// table index. A damaged table is returned here as an error naming the
// file instead. Tables the manifest does not list (left by a crash while a
// table was written) are Badger's to remove, and a manifest that cannot be
// read is left for Badger to report. Block checksums are verified as blocks
// are read (see Open).
func CheckTables(dir string) error {
	fp, err := os.Open(filepath.Join(dir, badger.ManifestFilename))
	if err != nil {
		return nil // a new database, or one Badger will refuse with its own error
	}
	m, _, err := badger.ReplayManifestFile(fp, 0, badger.DefaultOptions(dir))
	fp.Close()
	if err != nil {
		return nil
	}
	pool := z.NewAllocatorPool(1)
	defer pool.Release()
	for id, tm := range m.Tables {
		name := table.NewFilename(id, dir)
		if err := checkTable(name, tm.Compression, pool); err != nil {
			return fmt.Errorf("table %s is damaged: %v", name, err)
		}
	}
	return nil
}

func checkTable(name string, compression options.CompressionType, pool *z.AllocatorPool) (err error) {
	mf, err := z.OpenMmapFile(name, os.O_RDONLY, 0)
	if err != nil && !errors.Is(err, z.NewFile) {
		return err
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("cannot read its index: %v", firstLine(fmt.Sprint(r)))
		}
	}()
	def := badger.DefaultOptions("")
	t, err := table.OpenTable(mf, table.Options{
		ReadOnly: true, BlockSize: def.BlockSize, Compression: compression,
		ChkMode: options.NoVerification, AllocPool: pool,
	})
	if err != nil {
		return err
	}
	return t.MmapFile.Close(-1) // Close, not DecrRef: that would delete the file
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
