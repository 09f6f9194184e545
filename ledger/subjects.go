package ledger

import (
	"context"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// SubjectChain returns a subject's consent events, oldest first, read
// backward from its head along subject_prev_index.
type SubjectChain func() ([]*pb.Entry, error)

// ScanSubjects calls fn with the committed state of every subject that has
// a consent event, in order of subject_id, from one snapshot. chain reads
// the subject's consent events from the same snapshot when fn needs the
// history (a report as of an earlier time). It streams: one subject's state
// and chain are in memory at a time.
func (l *Ledger) ScanSubjects(ctx context.Context, fn func(st *pb.SubjectState, chain SubjectChain) error) error {
	return l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabSubject}, storage.PrefixEnd([]byte{tabSubject}), func(_, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			st := new(pb.SubjectState)
			if err := proto.Unmarshal(v, st); err != nil {
				return fmt.Errorf("decode subject state: %w", err)
			}
			return fn(st, func() ([]*pb.Entry, error) { return readChain(tx, st) })
		})
	})
}

// readChain reads the subject's consent events from its head back to its first.
func readChain(tx storage.ReadTx, st *pb.SubjectState) ([]*pb.Entry, error) {
	var out []*pb.Entry
	if st.Head == nil {
		return nil, nil
	}
	next, ok := st.Head.Index, true
	for ok {
		data, err := tx.Get(entryKey(next))
		if err != nil {
			return nil, fmt.Errorf("read entry %d of subject %s: %w", next, st.SubjectId, err)
		}
		e, err := DecodeEntry(data)
		if err != nil {
			return nil, err
		}
		if e.SubjectId != st.SubjectId {
			return nil, fmt.Errorf("entry %d is not about subject %s: the state index is damaged; rebuild it", next, st.SubjectId)
		}
		out = append(out, e)
		if e.SubjectPrevIndex == nil || *e.SubjectPrevIndex >= next {
			ok = false
		} else {
			next = *e.SubjectPrevIndex
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, nil
}
