package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/consentledger/consentledger/ledger/storage"
)

// Cosignature is one witness's cosignature line ("— name base64\n", C2SP
// signed-note) for the checkpoint of a size. The ledger stores what the
// witness package verified; it does not verify it again.
type Cosignature struct {
	Size    uint64
	Witness string // the name the witness is configured under
	Line    []byte // the signature line, ending in a newline
}

// AddCosignature stores a witness's cosignature line for the kept checkpoint
// of size, beside the checkpoint: the signed note itself is never rewritten.
// A later cosignature by the same witness for the same size replaces the
// earlier one (a witness may cosign a size again, with a new timestamp).
func (l *Ledger) AddCosignature(ctx context.Context, size uint64, witness string, line []byte) error {
	if witness == "" || !bytes.HasPrefix(line, []byte("— ")) || !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		return fmt.Errorf("%w: a cosignature is one line \"— name signature\" from a named witness", ErrInvalid)
	}
	return l.store.Update(ctx, func(tx storage.WriteTx) error {
		if _, err := tx.Get(checkpointKey(size)); errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: no checkpoint of size %d was signed, so none can be cosigned", ErrNotFound, size)
		} else if err != nil {
			return err
		}
		return tx.Set(cosigKey(size, witness), append([]byte(nil), line...))
	})
}

// Cosignatures returns the stored cosignatures of the checkpoint of size, in
// order of witness name.
func (l *Ledger) Cosignatures(ctx context.Context, size uint64) ([]Cosignature, error) {
	var out []Cosignature
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		out, err = cosignaturesIn(tx, size)
		return err
	})
	return out, err
}

func cosignaturesIn(tx storage.ReadTx, size uint64) ([]Cosignature, error) {
	var out []Cosignature
	prefix := cosigKey(size, "")
	err := tx.Scan(prefix, storage.PrefixEnd(prefix), func(k, v []byte) error {
		out = append(out, Cosignature{Size: size, Witness: string(k[9:]), Line: append([]byte(nil), v...)})
		return nil
	})
	return out, err
}

// LastCosigned returns, for each witness that ever cosigned, the largest
// checkpoint size it cosigned.
func (l *Ledger) LastCosigned(ctx context.Context) (map[string]Cosignature, error) {
	out := map[string]Cosignature{}
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabCosig}, storage.PrefixEnd([]byte{tabCosig}), func(k, v []byte) error {
			size := binary.BigEndian.Uint64(k[1:9])
			name := string(k[9:])
			if c, ok := out[name]; !ok || c.Size <= size {
				out[name] = Cosignature{Size: size, Witness: name, Line: append([]byte(nil), v...)}
			}
			return nil
		})
	})
	return out, err
}

// WithCosignatures returns c's note with every stored cosignature of its
// size appended as further signature lines: one signed note that auditors
// verify with the log's key and the witnesses' keys. It also returns how
// many cosignatures it appended.
func (l *Ledger) WithCosignatures(ctx context.Context, c *Checkpoint) ([]byte, int, error) {
	cs, err := l.Cosignatures(ctx, c.Size)
	if err != nil {
		return nil, 0, fmt.Errorf("read cosignatures of checkpoint %d: %w", c.Size, err)
	}
	return joinCosignatures(c.Note, cs), len(cs), nil
}

var errStopScan = errors.New("stop scan")

func joinCosignatures(signed []byte, cs []Cosignature) []byte {
	out := append([]byte(nil), signed...)
	for _, c := range cs {
		out = append(out, c.Line...)
	}
	return out
}

// CosignedCheckpoints calls fn for the kept checkpoints of size start or
// larger, at most limit of them (0: all), in order of size, each with its
// note carrying the stored cosignatures.
func (l *Ledger) CosignedCheckpoints(ctx context.Context, start uint64, limit int, fn func(c *Checkpoint, cosigned []byte) error) error {
	return l.store.View(ctx, func(tx storage.ReadTx) error {
		all := map[uint64][]Cosignature{}
		err := tx.Scan(cosigKey(start, ""), storage.PrefixEnd([]byte{tabCosig}), func(k, v []byte) error {
			size := binary.BigEndian.Uint64(k[1:9])
			all[size] = append(all[size], Cosignature{Size: size, Witness: string(k[9:]), Line: append([]byte(nil), v...)})
			return nil
		})
		if err != nil {
			return err
		}
		n := 0
		err = tx.Scan(checkpointKey(start), storage.PrefixEnd([]byte{tabCheckpoint}), func(k, v []byte) error {
			if limit > 0 && n >= limit {
				return errStopScan
			}
			n++
			c, err := l.parseCheckpoint(v)
			if err != nil {
				return err
			}
			return fn(c, joinCosignatures(c.Note, all[c.Size]))
		})
		if errors.Is(err, errStopScan) {
			return nil
		}
		return err
	})
}
