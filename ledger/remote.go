package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/merkle/proof"

	"github.com/consentledger/consentledger/ledger/remote"
	"github.com/consentledger/consentledger/ledger/storage"
)

// Remote is the log's source of truth when the ledger runs on a distributed
// log (see package remote for what lives where); nil means the local store
// alone.
type Remote = remote.Log

// SubjectRow is one row of the erasable subject table.
type SubjectRow = remote.SubjectRow

// ErrRemote wraps failures of the remote log or its database; the ledger
// answers writes with it (as unavailable) and acknowledges nothing.
var ErrRemote = errors.New("the distributed log is unavailable")

// remoteTimeout bounds one call to the remote made by the committer.
const remoteTimeout = 10 * time.Second

// catchUpTimeout bounds how long start waits for the remote to integrate
// every committed leaf.
const catchUpTimeout = 60 * time.Second

// remoteStats counts what operators must see about the remote.
type remoteStats struct {
	rootMismatches atomic.Uint64
}

// RemoteStats are counters of the remote log, for /metrics.
type RemoteStats struct {
	// Enabled is true when the ledger runs on a remote log.
	Enabled bool
	// RootMismatches counts checks where the remote's root differed from
	// the one computed locally (nothing was signed).
	RootMismatches uint64
}

// RemoteStats returns the remote log's counters.
func (l *Ledger) RemoteStats() RemoteStats {
	return RemoteStats{Enabled: l.opts.Remote != nil, RootMismatches: l.remoteStats.rootMismatches.Load()}
}

// commitRemote makes the batch's entries and new subject rows durable in
// the remote before the local store commits them. It returns the subject
// rows to delete once the local commit succeeded.
func (l *Ledger) commitRemote(b *batch) ([][]byte, error) {
	var leaves [][]byte
	var first uint64
	var puts []SubjectRow
	var dels [][]byte
	for _, w := range b.writes {
		switch w.key[0] {
		case tabEntry:
			if leaves == nil {
				first = keyIndex(w.key)
			}
			leaves = append(leaves, w.val)
		case tabTable:
			if w.del {
				dels = append(dels, w.key[1:])
			} else {
				puts = append(puts, SubjectRow{Key: w.key[1:], Value: w.val})
			}
		}
	}
	deadline, err := l.writeDeadline()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(puts) > 0 {
		if err := l.opts.Remote.PutSubjects(ctx, puts); err != nil {
			return nil, fmt.Errorf("%w: store %d subject rows: %v", ErrRemote, len(puts), err)
		}
	}
	if len(leaves) > 0 {
		if err := l.opts.Remote.AddLeaves(ctx, first, leaves); err != nil {
			return nil, fmt.Errorf("%w: add entries %d to %d: %v", ErrRemote, first, first+uint64(len(leaves))-1, err)
		}
	}
	return dels, nil
}

// eraseRemote deletes erased subjects' rows from the remote's table after
// their SubjectErased entries committed. A failure is logged: every start
// re-applies the log's erasures (syncSubjects).
func (l *Ledger) eraseRemote(keys [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), remoteTimeout)
	defer cancel()
	if err := l.opts.Remote.DeleteSubjects(ctx, keys); err != nil {
		l.opts.Logger.Error("delete erased subjects' rows from the SQL database; they are deleted again at the next start", "rows", len(keys), "err", err)
	}
}

// catchUp extends the local store to the remote's leaves, checks that both
// agree on the root, and brings the subject table and the signed
// checkpoints over. It runs at start, before the sequencer, and before a
// standby leads. A writer (settle) first waits until the remote has
// integrated every leaf committed to it, since it appends after them; a
// standby takes the integrated size — while a leader writes, committed
// leaves beyond it may never run out — and follows the rest.
func (l *Ledger) catchUp(ctx context.Context, s *sequencer, settle bool) error {
	r := l.opts.Remote
	remoteSize := l.integratedSize
	if settle {
		remoteSize = l.settledSize
	}
	size, root, err := remoteSize(ctx, s.size)
	if err != nil {
		return err
	}
	if s.size > size {
		return fmt.Errorf("%w: the local cache holds %d entries but the distributed log only %d: the data directory belongs to another tree or database; move its db folder away to rebuild it from the distributed log", ErrDataDir, s.size, size)
	}
	if s.size < size {
		l.opts.Logger.Info("catching up from the distributed log", "local", s.size, "remote", size)
	}
	for s.size < size {
		leaves, err := r.Leaves(ctx, s.size, int(min(size-s.size, 1000)))
		if err != nil {
			return fmt.Errorf("%w: read entries from %d: %v", ErrRemote, s.size, err)
		}
		if len(leaves) == 0 {
			return fmt.Errorf("%w: no entries returned from %d although the log's size is %d", ErrRemote, s.size, size)
		}
		if uint64(len(leaves)) > size-s.size {
			leaves = leaves[:size-s.size]
		}
		if err := s.ingest(ctx, leaves); err != nil {
			return err
		}
		if s.size%50_000 < uint64(len(leaves)) || s.size == size {
			l.opts.Logger.Info("caught up", "entries", s.size, "of", size)
		}
	}
	if got := l.view.Load().root; !bytes.Equal(got, root) {
		l.remoteStats.rootMismatches.Add(1)
		return fmt.Errorf("%w: at size %d the local root is %x but the distributed log's is %x: the data directory belongs to another tree; move its db folder away to rebuild it", ErrDataDir, size, got, root)
	}
	if err := l.syncSubjects(ctx); err != nil {
		return err
	}
	return l.syncCheckpoints(ctx)
}

// integratedSize waits until the remote has integrated at least local
// leaves (a standby's cache may be ahead of a just-restarted signer), and
// returns its integrated size and root.
func (l *Ledger) integratedSize(ctx context.Context, local uint64) (uint64, []byte, error) {
	deadline := time.Now().Add(catchUpTimeout)
	for {
		size, root, err := l.opts.Remote.Integrated(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: read the tree's size: %v", ErrRemote, err)
		}
		if size >= local {
			return size, root, nil
		}
		if err := retryAfter(ctx, deadline, func() error {
			return fmt.Errorf("%w: the distributed log has integrated %d entries and the local cache holds %d; none more were integrated within %s: check that trillian_log_signer runs", ErrRemote, size, local, catchUpTimeout)
		}); err != nil {
			return 0, nil, err
		}
	}
}

// settledSize waits until the remote has integrated every leaf committed
// to it (and at least local leaves), and returns that size and its root.
// Committed is not integrated: leaves past the integrated size are
// invisible to Leaves until the remote's signer integrates them.
func (l *Ledger) settledSize(ctx context.Context, local uint64) (uint64, []byte, error) {
	r := l.opts.Remote
	deadline := time.Now().Add(catchUpTimeout)
	var lastSize uint64
	stable := 0
	for {
		size, root, err := r.Integrated(ctx)
		if err != nil {
			return 0, nil, fmt.Errorf("%w: read the tree's size: %v", ErrRemote, err)
		}
		settled := false
		if size >= local {
			if size == 0 {
				// Nothing integrated: settled once it stays so for a while.
				if stable++; stable >= 3 {
					settled = true
				}
			} else {
				more, err := r.Leaves(ctx, size-1, 2)
				if err != nil {
					return 0, nil, fmt.Errorf("%w: read entry %d: %v", ErrRemote, size-1, err)
				}
				settled = len(more) == 1
			}
		}
		if settled {
			return size, root, nil
		}
		if size != lastSize {
			lastSize, stable = size, 0
		}
		if err := retryAfter(ctx, deadline, func() error {
			return fmt.Errorf("%w: the distributed log has integrated %d entries, and more are committed (or the local cache holds %d) but were not integrated within %s: check that trillian_log_signer runs", ErrRemote, size, local, catchUpTimeout)
		}); err != nil {
			return 0, nil, err
		}
	}
}

// retryAfter waits before the next reading of the remote's size (200 ms),
// or returns timedOut's error once deadline has passed, or ctx's error.
func retryAfter(ctx context.Context, deadline time.Time, timedOut func() error) error {
	if time.Now().After(deadline) {
		return timedOut()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(200 * time.Millisecond):
		return nil
	}
}

// ingest applies entries read from the remote to the local store, in one
// transaction, checking that each is the next one of the hash chain.
func (s *sequencer) ingest(ctx context.Context, leaves [][]byte) error {
	l := s.l
	s.openBatch()
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		s.ov.read = tx.Get
		defer func() { s.ov.read = nil }()
		for _, data := range leaves {
			if err := s.ingestOne(data); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.open = nil
		return fmt.Errorf("%w: %v — the distributed log does not hold a valid consentledger log (wrong tree id?)", ErrDataDir, err)
	}
	b := s.cut()
	if err := l.store.Update(ctx, b.write); err != nil {
		return fmt.Errorf("store entries caught up from the distributed log: %w", err)
	}
	l.view.Store(b.view)
	for _, t := range b.completed {
		l.tiles.add(t)
	}
	l.committed.Store(b.no)
	l.finished.Store(b.no)
	s.ov.prune(b.no)
	return nil
}

// ingestOne applies one entry from the remote as the sequencer would have.
func (s *sequencer) ingestOne(data []byte) error {
	b := s.open
	e, err := DecodeEntry(data)
	if err != nil {
		return fmt.Errorf("entry %d: %w", s.size, err)
	}
	if e.Index != s.size {
		return fmt.Errorf("entry at index %d names index %d", s.size, e.Index)
	}
	prev := s.lastLeaf
	if prev == nil {
		prev = zeroHash
	}
	if !bytes.Equal(e.PrevHash, prev) {
		return fmt.Errorf("entry %d does not chain to the entry before it", s.size)
	}
	leaf := hasher.HashLeaf(data)
	ref := entryRef(e, data)
	w := stateWriter{o: s.ov, batchNo: b.no}
	if err := applyEntry(w, e, ref); err != nil {
		return fmt.Errorf("entry %d: %w", s.size, err)
	}
	if err := deriveIdem(s.ov, e, e.Index, leaf, b.no); err != nil {
		return err
	}
	if err := s.tree.appendLeaf(leaf); err != nil {
		return err
	}
	b.writes = append(b.writes, kv{key: entryKey(e.Index), val: data})
	b.entries++
	s.size++
	s.lastLeaf, s.lastTime = leaf, e.RecordedAt.AsTime()
	return nil
}

// syncSubjects makes the local subject table a copy of the remote's, and
// re-applies every erasure the log records: a row of an erased subject
// (brought back by a database restore, or left by a failed delete) is
// deleted from the remote and not copied.
func (l *Ledger) syncSubjects(ctx context.Context) error {
	r := l.opts.Remote
	remote := map[string]struct{}{}
	var writes []kv
	var tombstones [][]byte
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return r.Subjects(ctx, func(row SubjectRow) error {
			if len(row.Value) <= 32 {
				return fmt.Errorf("subject table row of %d bytes is malformed", len(row.Value))
			}
			st, err := readSubject(tx, string(row.Value[32:]))
			if err != nil {
				return err
			}
			if st.GetErased() {
				tombstones = append(tombstones, append([]byte(nil), row.Key...))
				return nil
			}
			key := append([]byte{tabTable}, row.Key...)
			remote[string(key)] = struct{}{}
			if cur, err := tx.Get(key); err != nil || !bytes.Equal(cur, row.Value) {
				writes = append(writes, kv{key: key, val: append([]byte(nil), row.Value...)})
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("%w: copy the subject table: %v", ErrRemote, err)
	}
	err = l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabTable}, storage.PrefixEnd([]byte{tabTable}), func(k, _ []byte) error {
			if _, ok := remote[string(k)]; !ok {
				writes = append(writes, kv{key: append([]byte(nil), k...), del: true})
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read the local subject table: %w", err)
	}
	if len(tombstones) > 0 {
		l.opts.Logger.Warn("re-applying erasures recorded in the log to the SQL subject table (a restored database brought rows back)", "rows", len(tombstones))
		if err := r.DeleteSubjects(ctx, tombstones); err != nil {
			return fmt.Errorf("%w: re-apply erasures: %v", ErrRemote, err)
		}
	}
	for start := 0; start < len(writes); start += rebuildChunk {
		chunk := writes[start:min(start+rebuildChunk, len(writes))]
		err := l.store.Update(ctx, func(tx storage.WriteTx) error {
			return (&batch{writes: chunk}).write(tx)
		})
		if err != nil {
			return fmt.Errorf("update the local subject table: %w", err)
		}
	}
	return nil
}

// syncCheckpoints copies the remote's signed checkpoints that the local
// store lacks, refusing any whose root differs from a local one of the
// same size or from the local tree.
func (l *Ledger) syncCheckpoints(ctx context.Context) error {
	var after uint64
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(latestCheckpointKey)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		c, err := l.parseCheckpoint(raw)
		if err != nil {
			return err
		}
		after = c.Size
		return nil
	})
	if err != nil {
		return fmt.Errorf("read the latest local checkpoint: %w", err)
	}
	var latest []byte
	var writes []kv
	local := l.Size()
	err = l.opts.Remote.Checkpoints(ctx, after, func(size uint64, note []byte) error {
		if size > local {
			return errStopScan // signed for entries this node has not applied yet
		}
		c, err := l.parseCheckpoint(note)
		if err != nil {
			return fmt.Errorf("checkpoint of size %d in the database: %w", size, err)
		}
		if c.Size != size {
			return fmt.Errorf("checkpoint stored at size %d names size %d", size, c.Size)
		}
		root, err := l.RootAt(ctx, size)
		if err != nil {
			return err
		}
		if !bytes.Equal(root, c.Root) {
			l.remoteStats.rootMismatches.Add(1)
			return fmt.Errorf("the signed checkpoint of size %d has root %x, the log's root is %x", size, c.Root, root)
		}
		writes = append(writes, kv{key: checkpointKey(size), val: c.Note})
		latest = c.Note
		return nil
	})
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("%w: copy signed checkpoints: %v", ErrRemote, err)
	}
	if latest == nil {
		return nil
	}
	writes = append(writes, kv{key: latestCheckpointKey, val: latest})
	return l.store.Update(ctx, func(tx storage.WriteTx) error { return (&batch{writes: writes}).write(tx) })
}

// remoteSignSize returns the size to sign next on a remote log and its
// root: the remote's integrated size, once the local tree has it and the
// roots agree. With wait, it waits (bounded by ctx and a few seconds) until
// the remote has integrated everything committed locally now. ok is false
// when there is nothing new to sign.
func (l *Ledger) remoteSignSize(ctx context.Context, wait bool) (size uint64, root []byte, ok bool, err error) {
	target := l.Size()
	deadline := time.Now().Add(3 * time.Second)
	for {
		size, troot, err := l.opts.Remote.Integrated(ctx)
		if err != nil {
			return 0, nil, false, fmt.Errorf("%w: read the tree's size: %v", ErrRemote, err)
		}
		if size <= l.Size() && (size >= target || !wait || time.Now().After(deadline)) {
			if latest := l.latest.Load(); latest != nil && latest.Size >= size {
				return 0, nil, false, nil
			}
			ours, err := l.RootAt(ctx, size)
			if err != nil {
				return 0, nil, false, err
			}
			if !bytes.Equal(ours, troot) {
				l.remoteStats.rootMismatches.Add(1)
				l.opts.Logger.Error("ALARM: the distributed log's root differs from the ledger's; no checkpoint is signed", "size", size, "remote", fmt.Sprintf("%x", troot), "local", fmt.Sprintf("%x", ours))
				return 0, nil, false, fmt.Errorf("%w: at size %d the distributed log's root differs from the ledger's; nothing was signed", ErrRemote, size)
			}
			return size, ours, true, nil
		}
		if size > l.Size() && (!wait || time.Now().After(deadline)) {
			return 0, nil, false, nil // the local commit of that batch is in flight
		}
		select {
		case <-ctx.Done():
			return 0, nil, false, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkExtends checks with a consistency proof that the tree of size, with
// root, extends the checkpoint c.
func (l *Ledger) checkExtends(ctx context.Context, c *Checkpoint, size uint64, root []byte) error {
	if c == nil || c.Size == 0 {
		return nil
	}
	p, err := l.ConsistencyProof(ctx, c.Size, size)
	if err != nil {
		return err
	}
	return proof.VerifyConsistency(hasher, c.Size, size, p, c.Root, root)
}

// storeRemoteCheckpoint checks that the tree v extends the latest signed
// checkpoint and stores signed in the remote's database. It returns the
// note stored there for v's size: signed, or an equal-rooted one another
// node stored first. A different root for the same size is an alarm.
func (l *Ledger) storeRemoteCheckpoint(ctx context.Context, latest *Checkpoint, v *treeView, signed []byte) ([]byte, error) {
	if err := l.checkExtends(ctx, latest, v.size, v.root); err != nil {
		l.remoteStats.rootMismatches.Add(1)
		l.opts.Logger.Error("ALARM: the tree does not extend the latest signed checkpoint; nothing is signed", "size", v.size, "latest", latest.Size, "err", err)
		return nil, fmt.Errorf("%w: the tree of size %d does not extend the checkpoint of size %d: %v", ErrRemote, v.size, latest.Size, err)
	}
	stored, err := l.opts.Remote.PutCheckpoint(ctx, v.size, signed)
	if err != nil {
		return nil, fmt.Errorf("%w: store the checkpoint of size %d: %v", ErrRemote, v.size, err)
	}
	if bytes.Equal(stored, signed) {
		return signed, nil
	}
	c, err := l.parseCheckpoint(stored)
	if err != nil || c.Size != v.size || !bytes.Equal(c.Root, v.root) {
		l.remoteStats.rootMismatches.Add(1)
		l.opts.Logger.Error("ALARM: the database holds a different checkpoint for this size", "size", v.size)
		return nil, fmt.Errorf("%w: the database holds a different checkpoint of size %d", ErrRemote, v.size)
	}
	return stored, nil
}

// adoptCheckpoints is a standby's SignCheckpoint: it copies the
// checkpoints the leader signed (for sizes this node has applied) and
// returns the latest.
func (l *Ledger) adoptCheckpoints(ctx context.Context) (*Checkpoint, error) {
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	if err := l.syncCheckpoints(ctx); err != nil {
		return l.latest.Load(), err
	}
	if err := l.loadLatestCheckpoint(ctx); err != nil {
		return l.latest.Load(), err
	}
	return l.latest.Load(), nil
}
