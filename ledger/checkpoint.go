package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/proof"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/ledger/storage"
)

// Checkpoint is a signed checkpoint: a C2SP tlog-checkpoint body (origin,
// tree size, base64 root) in a C2SP signed note.
type Checkpoint struct {
	Size uint64
	Root []byte
	// Note is the signed note, verbatim, as auditors verify it.
	Note []byte
}

// LatestCheckpoint returns the most recently signed checkpoint.
func (l *Ledger) LatestCheckpoint() *Checkpoint { return l.latest.Load() }

// SignCheckpoint signs a checkpoint of the committed tree if it is larger
// than the latest signed one, keeps it, and returns the latest checkpoint.
// It never signs two roots for one size.
func (l *Ledger) SignCheckpoint(ctx context.Context) (*Checkpoint, error) {
	return l.signCheckpoint(ctx, true)
}

// signCheckpoint signs the committed tree, or on a remote log the size
// the remote has integrated (waiting a little for it when wait is set).
func (l *Ledger) signCheckpoint(ctx context.Context, wait bool) (*Checkpoint, error) {
	if l.IsStandby() {
		return l.adoptCheckpoints(ctx) // only the leader signs
	}
	var size uint64
	var root []byte
	if l.opts.Remote != nil {
		var ok bool
		var err error
		size, root, ok, err = l.remoteSignSize(ctx, wait)
		if err != nil || !ok {
			return l.latest.Load(), err
		}
	}
	l.ckptMu.Lock()
	defer l.ckptMu.Unlock()
	v := &treeView{size: size, root: root}
	if l.opts.Remote == nil {
		v = l.view.Load()
	}
	latest := l.latest.Load()
	if latest != nil && latest.Size >= v.size {
		return latest, nil
	}
	body := log.Checkpoint{Origin: l.origin, Size: v.size, Hash: v.root}.Marshal()
	signed, err := note.Sign(&note.Note{Text: string(body)}, l.keys.Signers...)
	if err != nil {
		return nil, fmt.Errorf("sign checkpoint of size %d: %w", v.size, err)
	}
	if l.opts.Remote != nil {
		if signed, err = l.storeRemoteCheckpoint(ctx, latest, v, signed); err != nil {
			return latest, err
		}
	}
	err = l.store.Update(ctx, func(tx storage.WriteTx) error {
		if _, err := tx.Get(checkpointKey(v.size)); err == nil {
			return fmt.Errorf("a checkpoint of size %d is already stored", v.size)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := tx.Set(checkpointKey(v.size), signed); err != nil {
			return err
		}
		return tx.Set(latestCheckpointKey, signed)
	})
	if err != nil {
		return nil, fmt.Errorf("store checkpoint of size %d: %w", v.size, err)
	}
	c := &Checkpoint{Size: v.size, Root: v.root, Note: signed}
	l.latest.Store(c)
	l.writeSidecar(signed)
	return c, nil
}

// CheckpointAt returns the kept checkpoint of exactly the given size.
func (l *Ledger) CheckpointAt(ctx context.Context, size uint64) (*Checkpoint, error) {
	var c *Checkpoint
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(checkpointKey(size))
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: no checkpoint of size %d was signed", ErrNotFound, size)
		}
		if err != nil {
			return err
		}
		c, err = l.parseCheckpoint(raw)
		return err
	})
	return c, err
}

// Checkpoints calls fn for every kept checkpoint, in order of size.
func (l *Ledger) Checkpoints(ctx context.Context, fn func(*Checkpoint) error) error {
	return l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabCheckpoint}, storage.PrefixEnd([]byte{tabCheckpoint}), func(k, v []byte) error {
			c, err := l.parseCheckpoint(v)
			if err != nil {
				return err
			}
			if c.Size != binary.BigEndian.Uint64(k[1:]) {
				return fmt.Errorf("checkpoint stored at size %d names size %d", binary.BigEndian.Uint64(k[1:]), c.Size)
			}
			return fn(c)
		})
	})
}

func (l *Ledger) parseCheckpoint(raw []byte) (*Checkpoint, error) {
	vs := make([]note.Verifier, len(l.keys.VerifierKeys))
	for i, vkey := range l.keys.VerifierKeys {
		v, err := note.NewVerifier(vkey)
		if err != nil {
			return nil, err
		}
		vs[i] = v
	}
	var cp *log.Checkpoint
	var err error
	for i := range vs {
		// Signed by any of the log's keys, the retired ones included.
		others := append(append([]note.Verifier(nil), vs[:i]...), vs[i+1:]...)
		if cp, _, _, err = log.ParseCheckpoint(raw, l.origin, vs[i], others...); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("stored checkpoint does not verify: %w", err)
	}
	return &Checkpoint{Size: cp.Size, Root: cp.Hash, Note: append([]byte(nil), raw...)}, nil
}

func (l *Ledger) loadLatestCheckpoint(ctx context.Context) error {
	var latest []byte
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		latest, err = tx.Get(latestCheckpointKey)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read latest checkpoint: %w", err)
	}
	c, err := l.parseCheckpoint(latest)
	if err != nil {
		return fmt.Errorf("%w: %v — the key files do not belong to this log, or the store is damaged: restore the data directory (keys and store together) from a backup", ErrDataDir, err)
	}
	if c.Size > l.Size() {
		return fmt.Errorf("%w: the latest checkpoint has size %d but the log holds %d entries: the store lost entries; restore the data directory from a backup", ErrDataDir, c.Size, l.Size())
	}
	// The stored tree must still extend what was signed: a damaged node
	// hash or tree record would otherwise be served as a wrong root.
	if err := l.checkSigned(ctx, c); err != nil {
		return err
	}
	l.latest.Store(c)
	return nil
}

// signLoop signs a checkpoint every CheckpointInterval when the log has grown.
func (l *Ledger) signLoop() {
	defer l.bg.Done()
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stopBg:
			return
		case <-t.C:
			if l.space.low.Load() {
				continue // a checkpoint is a write too; sign once space is back
			}
			if latest := l.latest.Load(); latest == nil || latest.Size < l.Size() {
				if _, err := l.signCheckpoint(context.Background(), false); err != nil {
					l.opts.Logger.Error("sign checkpoint", "err", err)
				}
			}
		}
	}
}

// checkSigned checks that the stored tree is consistent with the signed
// checkpoint c: the same root at c's size, or a consistency proof from it
// to the current size built from the stored node hashes.
func (l *Ledger) checkSigned(ctx context.Context, c *Checkpoint) error {
	size, root := l.Size(), l.Root()
	if c.Size == 0 {
		return nil
	}
	damaged := func(err error) error {
		return fmt.Errorf("%w: the stored tree (size %d) does not extend the latest signed checkpoint (size %d): %v; the store is damaged — restore the data directory from a backup, never serve this log", ErrDataDir, size, c.Size, err)
	}
	if c.Size == size {
		if !bytes.Equal(root, c.Root) {
			return damaged(fmt.Errorf("root %x, signed %x", root, c.Root))
		}
		return nil
	}
	p, err := l.ConsistencyProof(ctx, c.Size, size)
	if err != nil {
		return damaged(err)
	}
	if err := proof.VerifyConsistency(hasher, c.Size, size, p, c.Root, root); err != nil {
		return damaged(err)
	}
	return nil
}
