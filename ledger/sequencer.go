package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/subject"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// maxBatchBytes bounds the bytes of one batch's entries, well below
// Badger's transaction size limit.
const maxBatchBytes = 8 << 20

var zeroHash = make([]byte, hashSize)

// sequencer is the single goroutine that orders entries. It sequences each
// append as it arrives into the open batch, and hands that batch to the
// committer when the committer is ready: while one batch is being written
// and synced, the next one fills (group commit with a pipeline of one).
type sequencer struct {
	l         *Ledger
	tree      *treeBuilder
	ov        *overlay
	size      uint64
	lastLeaf  []byte
	lastTime  time.Time
	batchNo   uint64
	open      *batch
	carry     *pending // did not fit in the open batch
	lastBatch int      // appends in the last batch cut
	promoting *promoteReq
	rejoining bool // Demote asked for a rejoin as a standby
}

// batch is what the committer writes and then acknowledges.
type batch struct {
	no         uint64
	writes     []kv
	view       *treeView
	completed  []*tile
	acks       []ack
	entries    int
	bytes      int
	erased     [][]byte // subject rows to delete from the remote once committed
	durable    bool     // the remote accepted it (or there is none and the ledger is healthy)
	replicated bool     // a standby's batch: entries read from the remote, not to be sent back
}

type ack struct {
	p    *pending
	rcpt Receipt
	// results answers an AppendBatch (p.reqs), in request order.
	results []BatchResult
}

// answer acknowledges a after its batch committed.
func (a ack) answer() {
	if a.p.reqs != nil {
		a.p.done <- result{batch: a.results}
		return
	}
	a.p.done <- result{rcpt: a.rcpt}
}

func (s *sequencer) run() {
	defer close(s.l.seqDone)
	follow := time.NewTicker(followInterval)
	defer follow.Stop()
	for draining := false; ; {
		if req := s.promoting; req != nil {
			s.promoting = nil
			req.done <- s.promote(*req)
			continue
		}
		if s.rejoining {
			s.rejoining = false
			if err := s.rejoin(); err != nil {
				s.fail(err)
			}
			continue
		}
		// Reads go through one read transaction for many batches (opening
		// one per batch would wait for the commit in flight). Values written
		// by batches committed after it opened stay in the overlay, so the
		// transaction plus the overlay is always current.
		visible := s.l.committed.Load()
		opened := time.Now()
		var finished bool
		err := s.l.store.View(context.Background(), func(tx storage.ReadTx) error {
			s.ov.read = tx.Get
			defer func() { s.ov.read = nil }()
			s.ov.prune(visible)
			for {
				if s.open == nil {
					s.openBatch()
				}
				full := s.carry != nil || len(s.open.acks) >= s.l.opts.MaxBatch
				queue, ready := s.l.queue, s.l.ready
				if full || draining {
					queue = nil
				}
				if len(s.open.acks) == 0 {
					if draining {
						finished = true
						return nil
					}
					if s.open.entries == 0 {
						ready = nil
					}
				}
				var followC <-chan time.Time
				var promoteC chan promoteReq
				var rejoinC chan struct{}
				if s.l.role.standby.Load() && s.l.opts.Remote != nil && s.l.brokenErr() == nil {
					followC, promoteC = follow.C, s.l.role.promote
				}
				if s.l.opts.Remote != nil {
					rejoinC = s.l.role.rejoin
				}
				select {
				case <-rejoinC:
					s.rejoining = true
					return nil
				case <-followC:
					if err := s.follow(context.Background()); err != nil {
						return err
					}
				case req := <-promoteC:
					s.promoting = &req
					return nil
				case p, ok := <-queue:
					if !ok {
						draining = true
						continue
					}
					if err := s.add(p); err != nil {
						return err
					}
				case <-ready:
					if err := s.linger(); err != nil {
						return err
					}
					s.l.commits <- s.cut()
					if s.refreshDue(opened) {
						return nil
					}
				}
			}
		})
		if err != nil {
			s.fail(err)
		}
		if finished {
			return
		}
	}
}

// linger keeps adding appends that arrive within a short window after the
// committer became ready, so that appenders just acknowledged by the last
// commit make it into this one instead of waiting for the next.
func (s *sequencer) linger() error {
	if s.l.opts.CommitLinger <= 0 || s.lastBatch < 2 {
		return nil
	}
	deadline := time.Now().Add(s.l.opts.CommitLinger)
	for len(s.open.acks) < s.l.opts.MaxBatch && s.carry == nil {
		select {
		case p, ok := <-s.l.queue:
			if !ok {
				return nil
			}
			if err := s.add(p); err != nil {
				return err
			}
			continue
		default:
		}
		if time.Now().After(deadline) {
			return nil
		}
		runtime.Gosched()
	}
	return nil
}

// refreshDue reports whether to open a new read transaction: when no
// append waits and the transaction is old, or the overlay is large.
func (s *sequencer) refreshDue(opened time.Time) bool {
	age := time.Since(opened)
	idle := len(s.l.queue) == 0
	return (idle && age > 100*time.Millisecond) || age > 2*time.Second || len(s.ov.vals) > 2*overlayKeep
}

func (s *sequencer) openBatch() {
	s.batchNo++
	s.open = &batch{no: s.batchNo}
	if p := s.carry; p != nil {
		s.carry = nil
		if err := s.add(p); err != nil {
			s.fail(err)
			s.open = &batch{no: s.batchNo}
		}
	}
}

// add sequences one append into the open batch, or answers it with the
// reason it is refused.
func (s *sequencer) add(p *pending) error {
	b := s.open
	if err := s.l.brokenErr(); err != nil {
		p.done <- result{err: err}
		return nil
	}
	if s.l.IsStandby() { // queued before a Demote
		p.done <- result{err: s.l.notLeader()}
		return nil
	}
	if b.bytes+p.size > maxBatchBytes && len(b.acks) > 0 {
		s.carry = p
		return nil
	}
	if p.reqs != nil {
		return s.addGroup(p)
	}
	now := s.l.opts.Now().UTC()
	if now.Before(s.lastTime) {
		now = s.lastTime
	}
	s.ov.begin()
	rcpt, data, err := s.sequence(p, now, b.no)
	if err != nil {
		s.ov.rollback()
		p.done <- result{err: err}
		if errors.Is(err, errFatal) {
			return err
		}
		return nil
	}
	if data != nil {
		b.bytes += len(data)
		b.entries++
		b.writes = append(b.writes, kv{key: entryKey(rcpt.Index), val: data})
	}
	b.acks = append(b.acks, ack{p: p, rcpt: rcpt})
	s.l.sequenced.Store(b.no)
	return nil
}

// addGroup sequences all requests of one AppendBatch into the open batch,
// in order, each on its own: a refused request gets its error and appends
// nothing, the others are appended. The group is acknowledged as one.
func (s *sequencer) addGroup(p *pending) error {
	b := s.open
	a := ack{p: p, results: make([]BatchResult, len(p.reqs))}
	for i, req := range p.reqs {
		now := s.l.opts.Now().UTC()
		if now.Before(s.lastTime) {
			now = s.lastTime
		}
		s.ov.begin()
		rcpt, data, err := s.sequence(&pending{req: req}, now, b.no)
		if err != nil {
			s.ov.rollback()
			if errors.Is(err, errFatal) {
				// fail answers every ack of the open batch, this one too.
				b.acks = append(b.acks, a)
				return err
			}
			a.results[i].Err = err
			continue
		}
		if data != nil {
			b.bytes += len(data)
			b.entries++
			b.writes = append(b.writes, kv{key: entryKey(rcpt.Index), val: data})
		}
		a.results[i].Receipt = rcpt
	}
	b.acks = append(b.acks, a)
	s.l.sequenced.Store(b.no)
	return nil
}

// cut closes the open batch: it adds the state, tile and metadata writes.
func (s *sequencer) cut() *batch {
	b := s.open
	s.open = nil
	s.lastBatch = len(b.acks)
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
	s.l.handedOff.Store(b.no)
	return b
}

// fail stops the ledger after an internal failure and answers every append
// the sequencer holds.
func (s *sequencer) fail(err error) {
	s.l.setBroken(err)
	s.answerHeld(s.l.brokenErr())
}

// answerHeld answers every append the sequencer holds (the open batch and
// the carried one) with err and drops them: none was acknowledged.
func (s *sequencer) answerHeld(err error) {
	if s.open != nil {
		for _, a := range s.open.acks {
			a.p.done <- result{err: err}
		}
		s.open = nil
	}
	if s.carry != nil {
		s.carry.done <- result{err: err}
		s.carry = nil
	}
}

// write stages the batch's writes in tx.
func (b *batch) write(tx storage.WriteTx) error {
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
		id, commitment, existed, err := s.resolveSubject(*p.req.Subject, e, batchNo)
		if err != nil {
			return Receipt{}, nil, err
		}
		if p.req.CheckInputs && existed != p.req.ExpectedKnown {
			return Receipt{}, nil, ErrStaleKnown
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
		if p.req.CheckInputs {
			var err error
			if now, err = s.checkInputs(w, p.req, ss, now); err != nil {
				return Receipt{}, nil, err
			}
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

// checkInputs refuses a decision whose input was built from state that has
// changed since (Request.CheckInputs), and returns the time to record it at:
// now, or the input's time if that is later (recorded_at never precedes the
// input's now).
func (s *sequencer) checkInputs(w stateWriter, r *Request, ss *pb.SubjectState, now time.Time) (time.Time, error) {
	pol, err := w.policy()
	if err != nil {
		return now, fmt.Errorf("%w: %v", errFatal, err)
	}
	if !sameRef(pol.GetEntry(), r.ExpectedPolicy) {
		return now, ErrStalePolicy
	}
	epoch, err := w.ref(breachEpochKey)
	if err != nil {
		return now, fmt.Errorf("%w: %v", errFatal, err)
	}
	if !sameRef(epoch, r.ExpectedBreaches) {
		return now, ErrStaleBreaches
	}
	// The input lists last sends only with the subject's consents: a
	// subject without consent state has none to change.
	if ss != nil {
		last, err := w.ref(subjectLastSendKey(ss.SubjectId))
		if err != nil {
			return now, fmt.Errorf("%w: %v", errFatal, err)
		}
		if !sameRef(last, r.ExpectedLastSend) {
			return now, ErrStaleSend
		}
	}
	if t := r.EvaluatedAt.UTC(); t.After(now) {
		now = t
	} else if now.Sub(t) > state.MaxInputLag {
		return now, ErrStaleClock
	}
	return now, nil
}

// resolveSubject finds, or creates, the subject's row in the erasable table
// and returns its subject_id, the entry's commitment and whether the row
// existed. Erasure deletes the row in the same transaction as the
// SubjectErased entry.
func (s *sequencer) resolveSubject(id subject.Identifier, e *pb.Entry, batchNo uint64) (string, []byte, bool, error) {
	tk := tableKey(subject.TableKey(s.l.keys.SubjectKey, id))
	raw, ok, err := s.ov.get(tk)
	if err != nil {
		return "", nil, false, fmt.Errorf("%w: %v", errFatal, err)
	}
	var salt []byte
	var sid string
	switch {
	case ok && len(raw) > 32:
		salt, sid = raw[:32], string(raw[32:])
	case ok:
		return "", nil, false, fmt.Errorf("%w: subject table row of %d bytes is malformed", errFatal, len(raw))
	default:
		switch e.Event.(type) {
		case *pb.Entry_ConsentConfirmed:
			return "", nil, false, fmt.Errorf("%w: no opt-in has been recorded for this subject, so there is nothing to confirm", ErrPrecondition)
		case *pb.Entry_SubjectErased:
			return "", nil, false, fmt.Errorf("%w: the ledger knows no such subject (never recorded, or already erased)", ErrNotFound)
		}
		if salt, err = subject.NewSalt(); err != nil {
			return "", nil, false, fmt.Errorf("%w: %v", errFatal, err)
		}
		if sid, err = subject.NewSubjectID(); err != nil {
			return "", nil, false, fmt.Errorf("%w: %v", errFatal, err)
		}
		s.ov.put(tk, append(append([]byte(nil), salt...), sid...), batchNo)
	}
	if _, erase := e.Event.(*pb.Entry_SubjectErased); erase {
		s.ov.del(tk, batchNo)
	}
	c := subject.Commitment(salt, id)
	return sid, c[:], ok, nil
}

// commitLoop completes batches in order and acknowledges their appends.
// On a remote log a batch is first made durable there (commitRemote), and
// the local commit of one batch overlaps the remote call of the next: two
// stages, one remote call in flight, acknowledgements in order.
func (l *Ledger) commitLoop() {
	defer close(l.done)
	var local chan *batch
	if l.opts.Remote != nil {
		local = make(chan *batch, 2)
		localDone := make(chan struct{})
		go func() {
			defer close(localDone)
			for b := range local {
				l.finish(b)
			}
		}()
		defer func() {
			close(local)
			<-localDone
		}()
	}
	for {
		select {
		case l.ready <- struct{}{}:
		case <-l.seqDone:
			return
		}
		b, ok := <-l.commits
		if !ok {
			return
		}
		if local == nil {
			l.finish(b)
			continue
		}
		if b.replicated {
			b.durable = l.brokenErr() == nil
		} else if l.brokenErr() == nil {
			b.durable = true
			if len(b.writes) > 0 {
				var err error
				if b.erased, err = l.commitRemote(b); err != nil {
					if l.leaseEnded() {
						// A write cut off by the lease's end (a leader
						// paused past it): lost lease, not a failed remote.
						err = fmt.Errorf("%w: a write did not finish before the lease ended: %w", ErrLeaseLost, err)
					}
					// Set at once, so that no later batch goes to the remote.
					l.setBroken(err)
					b.durable = false
				}
			}
		}
		local <- b
	}
}

// finish commits b to the local store and acknowledges its appends, or
// answers them with the reason the ledger stopped.
//
// On a remote log, a batch the remote accepted is still committed locally
// after a later batch's remote call failed (it is durable; the local copy
// only spares the next start some catching up), but never after a local
// write failed.
func (l *Ledger) finish(b *batch) {
	if l.opts.Remote == nil {
		b.durable = l.brokenErr() == nil
	}
	if err := l.brokenErr(); err != nil && !errors.Is(err, ErrRemote) && !errors.Is(err, ErrLeaseLost) {
		b.durable = false
	}
	if b.durable && len(b.writes) > 0 {
		if err := l.store.Update(context.Background(), b.write); err != nil {
			l.setBroken(err)
			b.durable = false
		} else {
			l.cacheCommitted(b, nil)
			l.notePolicy(b)
			if len(b.erased) > 0 {
				l.eraseRemote(b.erased)
			}
		}
	}
	if !b.durable {
		err := l.brokenErr()
		for _, a := range b.acks {
			a.p.done <- result{err: err}
		}
		l.finished.Store(b.no)
		l.broadcast()
		return
	}
	l.view.Store(b.view)
	for _, t := range b.completed {
		l.tiles.add(t)
	}
	l.stats.batches.Add(1)
	l.stats.entries.Add(uint64(b.entries))
	l.committed.Store(b.no)
	l.finished.Store(b.no)
	for _, a := range b.acks {
		a.answer()
	}
	l.broadcast()
	l.checkSpace()
}
