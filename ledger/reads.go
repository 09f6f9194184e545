package ledger

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// MaxEntriesPerRead bounds Entries' count.
const MaxEntriesPerRead = 10000

// Entry returns the stored bytes of entry index.
func (l *Ledger) Entry(ctx context.Context, index uint64) ([]byte, error) {
	if size := l.Size(); index >= size {
		return nil, fmt.Errorf("%w: entry %d is beyond the log's size %d", ErrNotFound, index, size)
	}
	var data []byte
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		data, err = tx.Get(entryKey(index))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read entry %d: %w", index, err)
	}
	return data, nil
}

// Entries returns the stored bytes of up to count entries from start
// (fewer at the end of the log; count at most MaxEntriesPerRead).
func (l *Ledger) Entries(ctx context.Context, start uint64, count int) ([][]byte, error) {
	if count < 0 || count > MaxEntriesPerRead {
		return nil, fmt.Errorf("%w: count must be 0 to %d", ErrInvalid, MaxEntriesPerRead)
	}
	var out [][]byte
	err := l.Scan(ctx, start, uint64(count), func(_ uint64, data []byte) error {
		out = append(out, append([]byte(nil), data...))
		return nil
	})
	return out, err
}

// Scan calls fn with up to limit entries from start, in order, from one
// snapshot of the committed log (limit 0: to the end). data is valid only
// during the call. It streams: an export of the whole log holds one entry
// in memory at a time.
func (l *Ledger) Scan(ctx context.Context, start, limit uint64, fn func(index uint64, data []byte) error) error {
	size := l.Size()
	if start > size {
		return fmt.Errorf("%w: start %d is beyond the log's size %d", ErrNotFound, start, size)
	}
	end := size
	if limit > 0 && start+limit < end {
		end = start + limit
	}
	if start == end {
		return nil
	}
	next := start
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan(entryKey(start), entryKey(end), func(k, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			if next != keyIndex(k) {
				return fmt.Errorf("entry %d is missing from the store", next)
			}
			next++
			return fn(keyIndex(k), v)
		})
	})
	if err == nil && next != end {
		err = fmt.Errorf("entries %d to %d are missing from the store", next, end-1)
	}
	return err
}

func keyIndex(k []byte) uint64 {
	var n uint64
	for _, b := range k[1:] {
		n = n<<8 | uint64(b)
	}
	return n
}

// entryRef returns the EntryRef of a decoded entry and its stored bytes.
func entryRef(e *pb.Entry, data []byte) *pb.EntryRef {
	return &pb.EntryRef{Index: e.Index, LeafHash: hasher.HashLeaf(data), RecordedAt: e.RecordedAt}
}

// DecodeEntry decodes stored entry bytes.
func DecodeEntry(data []byte) (*pb.Entry, error) {
	e := new(pb.Entry)
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode entry: %w", err)
	}
	return e, nil
}

// LookupSubject returns the subject_id and committed state of the person id
// names. found is false if the ledger has never seen the person (or erased
// them); the state is nil then, or when the subject has no entries yet.
// The state is never older than the last acknowledged entry; it may be
// shared with other callers (the ledger's state cache), so do not modify it.
func (l *Ledger) LookupSubject(ctx context.Context, id subject.Identifier) (subjectID string, st *pb.SubjectState, found bool, err error) {
	subjectID, st, found, err = l.lookupSubjectLocal(ctx, id)
	if err == nil && !found && l.IsStandby() {
		// A subject the leader created after this standby copied the
		// table: its row is in the remote's table.
		return l.lookupSubjectRemote(ctx, id)
	}
	return subjectID, st, found, err
}

func (l *Ledger) lookupSubjectLocal(ctx context.Context, id subject.Identifier) (subjectID string, st *pb.SubjectState, found bool, err error) {
	if l.stateCacheMax() > 0 {
		return l.lookupSubjectCached(ctx, id)
	}
	err = l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(tableKey(subject.TableKey(l.keys.SubjectKey, id)))
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(raw) <= 32 {
			return fmt.Errorf("subject table row is malformed")
		}
		subjectID, found = string(raw[32:]), true
		st, err = readSubject(tx, subjectID)
		return err
	})
	return subjectID, st, found, err
}

// SubjectState returns the committed state of subject_id, or ErrNotFound.
// Like LookupSubject's, the state may be shared: do not modify it.
func (l *Ledger) SubjectState(ctx context.Context, subjectID string) (*pb.SubjectState, error) {
	if l.stateCacheMax() > 0 {
		return l.subjectStateCached(ctx, subjectID)
	}
	var st *pb.SubjectState
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		st, err = readSubject(tx, subjectID)
		return err
	})
	if err == nil && st == nil {
		err = fmt.Errorf("%w: no subject %s", ErrNotFound, subjectID)
	}
	return st, err
}

// readSubject reads a subject's state and puts each consent's last allowed
// send into it; nil if the subject has no consent event.
func readSubject(tx storage.ReadTx, subjectID string) (*pb.SubjectState, error) {
	st, err := getProto(tx, subjectKey(subjectID), new(pb.SubjectState))
	if err != nil || st == nil {
		return st, err
	}
	// One Get per consent: cheaper than an iterator over the subject's records.
	for _, cs := range st.Consents {
		v, err := tx.Get(lastSendKey(subjectID, cs.Channel, cs.Purpose))
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		ref := new(pb.EntryRef)
		if err := proto.Unmarshal(v, ref); err != nil {
			return nil, fmt.Errorf("decode last send: %w", err)
		}
		cs.LastAllowedSend, cs.LastAllowedSendAt = ref, ref.RecordedAt
	}
	if st.LastAllowedSend, err = getProto(tx, subjectLastSendKey(subjectID), new(pb.EntryRef)); err != nil {
		return nil, fmt.Errorf("decode last send: %w", err)
	}
	return st, nil
}

// RevealSubject returns the subject_id, salt and commitment of the person id
// names, so that an operator can show a regulator which entries concern them.
func (l *Ledger) RevealSubject(ctx context.Context, id subject.Identifier) (subjectID string, salt, commitment []byte, err error) {
	err = l.store.View(ctx, func(tx storage.ReadTx) error {
		raw, err := tx.Get(tableKey(subject.TableKey(l.keys.SubjectKey, id)))
		if errors.Is(err, storage.ErrNotFound) && l.IsStandby() {
			raw, err = l.remoteRow(ctx, id)
		}
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("%w: the ledger knows no such subject (never recorded, or erased)", ErrNotFound)
		}
		if err != nil {
			return err
		}
		salt, subjectID = raw[:32], string(raw[32:])
		c := subject.Commitment(salt, id)
		commitment = c[:]
		return nil
	})
	return subjectID, salt, commitment, err
}

// Breach returns the committed state of one breach, or ErrNotFound.
func (l *Ledger) Breach(ctx context.Context, breachID string) (*pb.BreachState, error) {
	return viewProto(ctx, l, breachKey(breachID), new(pb.BreachState), "breach "+breachID)
}

// Breaches returns every breach, in order of breach_id.
func (l *Ledger) Breaches(ctx context.Context) ([]*pb.BreachState, error) {
	var out []*pb.BreachState
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabBreach}, storage.PrefixEnd([]byte{tabBreach}), func(_, v []byte) error {
			b := new(pb.BreachState)
			if err := proto.Unmarshal(v, b); err != nil {
				return fmt.Errorf("decode breach state: %w", err)
			}
			out = append(out, b)
			return nil
		})
	})
	return out, err
}

// Reviews returns the InboundReview entries, in ledger order.
func (l *Ledger) Reviews(ctx context.Context) ([]*pb.EntryRef, error) {
	var out []*pb.EntryRef
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabReview}, storage.PrefixEnd([]byte{tabReview}), func(_, v []byte) error {
			r := new(pb.EntryRef)
			if err := proto.Unmarshal(v, r); err != nil {
				return fmt.Errorf("decode review: %w", err)
			}
			out = append(out, r)
			return nil
		})
	})
	return out, err
}

// OpenBreaches returns the open breaches in order of breach_id, as a
// decision's input lists them, and the latest breach event (nil if none),
// which names that set for Request.ExpectedBreaches; both from one snapshot.
func (l *Ledger) OpenBreaches(ctx context.Context) ([]*pb.BreachState, *pb.EntryRef, error) {
	var open []*pb.BreachState
	var epoch *pb.EntryRef
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		if epoch, err = getProto(tx, breachEpochKey, new(pb.EntryRef)); err != nil {
			return err
		}
		return tx.Scan([]byte{tabBreach}, storage.PrefixEnd([]byte{tabBreach}), func(_, v []byte) error {
			b := new(pb.BreachState)
			if err := proto.Unmarshal(v, b); err != nil {
				return fmt.Errorf("decode breach state: %w", err)
			}
			if b.Status == BreachOpen {
				open = append(open, b)
			}
			return nil
		})
	})
	return open, epoch, err
}

// ActivePolicy returns the active policy, or ErrNotFound if none was published.
func (l *Ledger) ActivePolicy(ctx context.Context) (*pb.PolicyState, error) {
	return viewProto(ctx, l, policyKey, new(pb.PolicyState), "active policy")
}

func viewProto[M proto.Message](ctx context.Context, l *Ledger, key []byte, m M, what string) (M, error) {
	var out M
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		var err error
		out, err = getProto(tx, key, m)
		return err
	})
	if err == nil && isNil(out) {
		err = fmt.Errorf("%w: no %s", ErrNotFound, what)
	}
	return out, err
}

func isNil[M proto.Message](m M) bool { return any(m) == any(*new(M)) }

// getProto decodes the record at key into m; it returns the zero M if absent.
func getProto[M proto.Message](tx storage.ReadTx, key []byte, m M) (M, error) {
	var zero M
	raw, err := tx.Get(key)
	if errors.Is(err, storage.ErrNotFound) {
		return zero, nil
	}
	if err != nil {
		return zero, err
	}
	if err := proto.Unmarshal(raw, m); err != nil {
		return zero, fmt.Errorf("decode %T: %w", m, err)
	}
	return m, nil
}

// Fingerprint returns a keyed digest (HMAC-SHA256 with the subject key) of a
// request's bytes, for Request.Fingerprint. Keyed, because requests hold
// phone numbers and e-mail addresses, whose plain hashes could be reversed.
func (l *Ledger) Fingerprint(request []byte) []byte {
	m := hmac.New(sha256.New, l.keys.SubjectKey)
	m.Write([]byte("consentledger request fingerprint\x00"))
	m.Write(request)
	return m.Sum(nil)
}

// LeafHash returns the RFC 6962 leaf hash of stored entry bytes.
func LeafHash(data []byte) []byte { return hasher.HashLeaf(data) }

// Ref returns the EntryRef of entry index.
func (l *Ledger) Ref(ctx context.Context, index uint64) (*pb.EntryRef, error) {
	data, err := l.Entry(ctx, index)
	if err != nil {
		return nil, err
	}
	e, err := DecodeEntry(data)
	if err != nil {
		return nil, err
	}
	return entryRef(e, data), nil
}

// remoteRow reads a subject's row from the remote's table (a standby's
// lookup of a subject created after it copied the table), or an error
// wrapping storage.ErrNotFound.
func (l *Ledger) remoteRow(ctx context.Context, id subject.Identifier) ([]byte, error) {
	raw, ok, err := l.opts.Remote.Subject(ctx, tableKey(subject.TableKey(l.keys.SubjectKey, id))[1:])
	if err != nil {
		return nil, fmt.Errorf("%w: read the subject table: %v", ErrRemote, err)
	}
	if !ok {
		return nil, storage.ErrNotFound
	}
	if len(raw) <= 32 {
		return nil, fmt.Errorf("subject table row is malformed")
	}
	return raw, nil
}

func (l *Ledger) lookupSubjectRemote(ctx context.Context, id subject.Identifier) (string, *pb.SubjectState, bool, error) {
	raw, err := l.remoteRow(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return "", nil, false, nil
	}
	if err != nil {
		return "", nil, false, err
	}
	sid := string(raw[32:])
	st, err := l.SubjectState(ctx, sid)
	if errors.Is(err, ErrNotFound) {
		return sid, nil, true, nil // the leader's entry has not reached this standby yet
	}
	if err != nil {
		return "", nil, false, err
	}
	if st.GetErased() {
		return "", nil, false, nil
	}
	return sid, st, true, nil
}
