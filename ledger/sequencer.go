package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// maxBatchBytes bounds the bytes of one batch's entries, well below
// Badger's transaction size limit.
const maxBatchBytes = 8 << 20

var zeroHash = make([]byte, hashSize)

// sequencer is the single goroutine that orders entries. It builds a batch
// from whatever appends are waiting, hands it to the committer and goes on
// with the next batch while that one is being synced (group commit with a
// pipeline of one).
type sequencer struct {
	l        *Ledger
	tree     *treeBuilder
	ov       *overlay
	size     uint64
	lastLeaf []byte
	lastTime time.Time
	batchNo  uint64
	carry    []*pending
}

// batch is what the committer writes and then acknowledges.
type batch struct {
	no        uint64
	writes    []kv
	view      *treeView
	completed []*tile
	acks      []ack
}

type ack struct {
	p    *pending
	rcpt Receipt
}

func (s *sequencer) run() {
	defer close(s.l.commits)
	for {
		var ps []*pending
		if len(s.carry) > 0 {
			ps, s.carry = s.carry, nil
		} else {
			p, ok := <-s.l.queue
			if !ok {
				return
			}
			ps = []*pending{p}
		}
	drain:
		for len(ps) < s.l.opts.MaxBatch {
			select {
			case p, ok := <-s.l.queue:
				if !ok {
					break drain
				}
				ps = append(ps, p)
			default:
				break drain
			}
		}
		b := s.build(ps)
		s.l.handedOff.Store(b.no)
		s.l.commits <- b
	}
}

// build sequences the waiting appends into one batch.
func (s *sequencer) build(ps []*pending) *batch {
	s.batchNo++
	b := &batch{no: s.batchNo}
	if err := s.l.brokenErr(); err != nil {
		for _, p := range ps {
			p.done <- result{err: err}
		}
		return b
	}
	s.ov.prune(s.l.committed.Load())
	now := s.l.opts.Now().UTC()
	if now.Before(s.lastTime) {
		now = s.lastTime
	}
	bytesIn := 0
	err := s.l.store.View(context.Background(), func(tx storage.ReadTx) error {
		s.ov.read = tx.Get
		defer func() { s.ov.read = nil }()
		for i, p := range ps {
			if bytesIn+p.size > maxBatchBytes && len(b.acks) > 0 {
				s.carry = ps[i:]
				break
			}
			s.ov.begin()
			rcpt, data, err := s.sequence(p, now, b.no)
			if err != nil {
				s.ov.rollback()
				if errors.Is(err, errFatal) {
					return err
				}
				p.done <- result{err: err}
				continue
			}
			if data != nil {
				bytesIn += len(data)
				b.writes = append(b.writes, kv{key: entryKey(rcpt.Index), val: data})
			}
			b.acks = append(b.acks, ack{p: p, rcpt: rcpt})
		}
		return nil
	})
	if err != nil {
		s.l.setBroken(err)
		for _, a := range b.acks {
			a.p.done <- result{err: s.l.brokenErr()}
		}
		for _, p := range s.carry {
			p.done <- result{err: s.l.brokenErr()}
		}
		b.acks, s.carry = nil, nil
		return b
	}
	b.writes = append(b.writes, s.ov.takeWrites()...)
	view, tiles := s.tree.view()
	for _, t := range tiles {
		b.writes = append(b.writes, kv{key: tileKey(t.id), val: t.marshal()})
		if t.complete() {
			b.completed = append(b.completed, t)
		}
	}
	meta := &treeMeta{size: s.size, lastLeaf: s.lastLeaf, lastTime: s.lastTime, rangeNodes: s.tree.rng.Hashes()}
	b.writes = append(b.writes, kv{key: metaKey, val: meta.marshal()})
	b.view = view
	return b
}

// errFatal marks an internal failure that leaves the sequencer's state
// unusable; the ledger stops accepting appends.
var errFatal = errors.New("internal ledger failure")

// sequence assigns the next index to one request and stages its state
// changes in the overlay. It returns the entry's stored bytes, or nil bytes
// for an idempotent retry.
func (s *sequencer) sequence(p *pending, now time.Time, batchNo uint64) (Receipt, []byte, error) {
	e := p.req.Entry
	w := stateWriter{o: s.ov, batchNo: batchNo}
	var ik []byte
	if e.IdempotencyKey != "" {
		ik = idemKey(e.Actor, e.IdempotencyKey)
		raw, ok, err := s.ov.get(ik)
		if err != nil {
			return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
		}
		if ok {
			rec, err := unmarshalIdem(raw)
			if err != nil {
				return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
			}
			fp, _, err := s.ov.get(fingerKey(e.Actor, e.IdempotencyKey))
			if err != nil {
				return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
			}
			if len(p.req.Fingerprint) > 0 && len(fp) > 0 && !bytes.Equal(p.req.Fingerprint, fp) {
				return Receipt{}, nil, fmt.Errorf("%w: idempotency_key %q was already used for a different request (entry %d); use a new key for a new request", ErrConflict, e.IdempotencyKey, rec.index)
			}
			return Receipt{Index: rec.index, LeafHash: rec.leafHash, RecordedAt: rec.recordedAt, SubjectID: rec.subjectID, Duplicate: true}, nil, nil
		}
	}

	// Clear what the ledger sets.
	e.Index, e.RecordedAt, e.PrevHash = 0, nil, nil
	e.SubjectId, e.SubjectCommitment = "", nil
	e.SubjectPrevIndex, e.SubjectPrevHash, e.ConsentHeadIndex, e.ConsentHeadHash = nil, nil, nil, nil

	var ss *pb.SubjectState
	if p.req.Subject != nil {
		id, commitment, err := s.resolveSubject(*p.req.Subject, e, batchNo)
		if err != nil {
			return Receipt{}, nil, err
		}
		e.SubjectId, e.SubjectCommitment = id, commitment
		if ss, err = w.subject(id); err != nil {
			return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
		}
	}
	if err := checkAgainstState(w, e, ss); err != nil {
		return Receipt{}, nil, err
	}
	head := ss.GetHead()
	if isConsentEvent(e) && head != nil {
		idx := head.Index
		e.SubjectPrevIndex, e.SubjectPrevHash = &idx, head.LeafHash
	}
	if _, ok := e.Event.(*pb.Entry_SendDecision); ok {
		if p.req.CheckHead && !sameRef(head, p.req.ExpectedHead) {
			return Receipt{}, nil, ErrStaleHead
		}
		if head != nil {
			idx := head.Index
			e.ConsentHeadIndex, e.ConsentHeadHash = &idx, head.LeafHash
		}
	}

	e.Index = s.size
	e.RecordedAt = timestamppb.New(now)
	e.PrevHash = s.lastLeaf
	if e.PrevHash == nil {
		e.PrevHash = zeroHash
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
	if err != nil {
		return Receipt{}, nil, fmt.Errorf("%w: entry cannot be encoded (is every text valid UTF-8?): %v", ErrInvalid, err)
	}
	if len(data) > MaxEntryBytes {
		return Receipt{}, nil, fmt.Errorf("%w: entry is %d bytes, the limit is %d", ErrInvalid, len(data), MaxEntryBytes)
	}
	leaf := hasher.HashLeaf(data)
	ref := &pb.EntryRef{Index: e.Index, LeafHash: leaf, RecordedAt: e.RecordedAt}
	if err := applyEntry(w, e, ref); err != nil {
		return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
	}
	rcpt := Receipt{Index: e.Index, LeafHash: leaf, RecordedAt: now, SubjectID: e.SubjectId}
	if ik != nil {
		rec := &idemRecord{index: e.Index, leafHash: leaf, recordedAt: now, subjectID: e.SubjectId}
		s.ov.put(ik, rec.marshal(), batchNo)
		if len(p.req.Fingerprint) > 0 {
			s.ov.put(fingerKey(e.Actor, e.IdempotencyKey), p.req.Fingerprint, batchNo)
		}
	}
	if err := s.tree.appendLeaf(leaf); err != nil {
		return Receipt{}, nil, fmt.Errorf("%w: %v", errFatal, err)
	}
	s.size++
	s.lastLeaf, s.lastTime = leaf, now
	return rcpt, data, nil
}

// resolveSubject finds, or creates, the subject's row in the erasable table
// and returns its subject_id and the entry's commitment. Erasure deletes
// the row in the same transaction as the SubjectErased entry.
func (s *sequencer) resolveSubject(id subject.Identifier, e *pb.Entry, batchNo uint64) (string, []byte, error) {
	tk := tableKey(subject.TableKey(s.l.keys.SubjectKey, id))
	raw, ok, err := s.ov.get(tk)
	if err != nil {
		return "", nil, fmt.Errorf("%w: %v", errFatal, err)
	}
	var salt []byte
	var sid string
	switch {
	case ok && len(raw) > 32:
		salt, sid = raw[:32], string(raw[32:])
	case ok:
		return "", nil, fmt.Errorf("%w: subject table row of %d bytes is malformed", errFatal, len(raw))
	default:
		switch e.Event.(type) {
		case *pb.Entry_ConsentConfirmed:
			return "", nil, fmt.Errorf("%w: no opt-in has been recorded for this subject, so there is nothing to confirm", ErrPrecondition)
		case *pb.Entry_SubjectErased:
			return "", nil, fmt.Errorf("%w: the ledger knows no such subject (never recorded, or already erased)", ErrNotFound)
		}
		if salt, err = subject.NewSalt(); err != nil {
			return "", nil, fmt.Errorf("%w: %v", errFatal, err)
		}
		if sid, err = subject.NewSubjectID(); err != nil {
			return "", nil, fmt.Errorf("%w: %v", errFatal, err)
		}
		s.ov.put(tk, append(append([]byte(nil), salt...), sid...), batchNo)
	}
	if _, erase := e.Event.(*pb.Entry_SubjectErased); erase {
		s.ov.del(tk, batchNo)
	}
	c := subject.Commitment(salt, id)
	return sid, c[:], nil
}

// commitLoop writes batches in order and acknowledges their appends.
func (l *Ledger) commitLoop() {
	defer close(l.done)
	for b := range l.commits {
		err := l.brokenErr()
		if err == nil && len(b.writes) > 0 {
			err = l.store.Update(context.Background(), func(tx storage.WriteTx) error {
				for _, w := range b.writes {
					var err error
					if w.del {
						err = tx.Delete(w.key)
					} else {
						err = tx.Set(w.key, w.val)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				l.setBroken(err)
				err = l.brokenErr()
			}
		}
		if err != nil {
			for _, a := range b.acks {
				a.p.done <- result{err: err}
			}
			continue
		}
		if b.view != nil {
			l.view.Store(b.view)
		}
		for _, t := range b.completed {
			l.tiles.add(t)
		}
		l.committed.Store(b.no)
		for _, a := range b.acks {
			a.p.done <- result{rcpt: a.rcpt}
		}
		l.broadcast()
	}
}
