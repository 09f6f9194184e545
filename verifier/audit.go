package verifier

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/consentledger/consentledger/export"
	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// ArticleDeadline is the GDPR Art. 33(1) deadline for notifying the
// supervisory authority of a breach, counted from its detection.
const ArticleDeadline = 72 * time.Hour

// MaxFindings bounds the findings an [AuditReport] lists; the total is
// always counted.
const MaxFindings = 1000

// progressEvery is how many entries pass between calls of a progress
// function.
const progressEvery = 1 << 13

// The audit's checks, as findings name them.
const (
	AuditSignature = "signature"     // the export's checkpoint is signed by the pinned key
	AuditEntry     = "entry"         // every entry decodes and has an event
	AuditIndex     = "index"         // entry i's index field is i
	AuditHashChain = "hash chain"    // prev_hash is the leaf hash of the entry before
	AuditTimeOrder = "time order"    // recorded_at never decreases
	AuditRoot      = "merkle root"   // the entries hash to the checkpoint's root and size
	AuditSubjects  = "subject chain" // consent chains linear and complete, decision heads current
	AuditPolicies  = "policy"        // digests recompute; decisions name the policy in force
	AuditInput     = "input"         // every decision's input is the one the log derives
	AuditReplay    = "replay"        // every decision replays to its recorded result
	AuditBreaches  = "breach"        // Art. 33 notification in time or with a delay reason
)

var auditChecks = []string{AuditSignature, AuditEntry, AuditIndex, AuditHashChain, AuditTimeOrder, AuditRoot, AuditSubjects, AuditPolicies, AuditInput, AuditReplay, AuditBreaches}

// Finding is one problem an audit found. It wraps [ErrInvalid].
type Finding struct {
	Check string `json:"check"` // one of the Audit… names
	// Index is the entry concerned; valid when HasIndex (a root mismatch
	// concerns the whole log).
	Index    uint64 `json:"index"`
	HasIndex bool   `json:"has_index"`
	Message  string `json:"message"`
	Got      string `json:"got,omitempty"`
	Want     string `json:"want,omitempty"`
}

func (f *Finding) Error() string {
	s := f.Check + ": "
	if f.HasIndex {
		s = fmt.Sprintf("entry #%d: %s", f.Index, s)
	}
	s += f.Message
	if f.Got != "" || f.Want != "" {
		s += fmt.Sprintf(": got %s, want %s", orNone(f.Got), orNone(f.Want))
	}
	return s
}

// Unwrap returns ErrInvalid.
func (f *Finding) Unwrap() error { return ErrInvalid }

// AuditError is the error of an audit with findings: it names the first
// (by index) and counts them all. It wraps [ErrInvalid] and the first
// finding.
type AuditError struct {
	First *Finding
	Total int
}

func (e *AuditError) Error() string {
	if e.Total == 1 {
		return "1 finding: " + e.First.Error()
	}
	return fmt.Sprintf("%d findings, the first: %s", e.Total, e.First.Error())
}

// Unwrap returns ErrInvalid and the first finding.
func (e *AuditError) Unwrap() []error { return []error{ErrInvalid, e.First} }

// Audit verifies a whole exported log (package export, `consentledger
// export`) against the pinned verifier key vkey, streaming: it holds no
// more than a few entries, one compact Merkle range (O(log n) hashes), the
// last consent event of each subject, the files of each policy and the
// breaches. It checks
//
//   - the export's checkpoint is signed by the pinned key;
//   - entry i decodes, has an event and its index field is i;
//   - each entry's prev_hash is the leaf hash of the entry before it (32
//     zero bytes for entry 0), and recorded_at never decreases;
//   - the entries hash to the checkpoint's root, and their count is its size;
//   - every subject's consent chain is linear and complete (each consent
//     event names the subject's previous one, by index and leaf hash), every
//     decision names its subject's latest consent event as its consent head,
//     and nothing follows a subject's erasure;
//   - every policy's digest recomputes from its files, every decision names
//     the latest policy entry before it and its digest, and replaying every
//     decision's recorded input with that policy gives the recorded result
//     (on all cores, each evaluation bounded by [Options.ReplayTimeout]);
//   - every decision's recorded input is the one derived from the log up to
//     it with the server's own derivation (package ledger/state, the version
//     the decision names): the subject's consent state on every channel
//     with its last allowed sends, the open breaches and the recorded
//     request; its `now` is not after the decision's recorded_at nor more
//     than state.MaxInputLag before it; an allowed decision relies exactly
//     on the subject's grant (and confirmation) for the channel and purpose,
//     not withdrawn since. subject.country, which comes from a phone number
//     the log never holds, is reported unproven;
//   - every breach was notified to the authority within 72 hours of
//     detection (GDPR Art. 33(1)), or late with a delay reason; a breach
//     still open and unnotified past its deadline (as of the last entry) is a
//     finding too.
//
// It reads no entry beyond the checkpoint's size: one there is a finding,
// and the audit stops reading. progress, if not nil, is called every few
// thousand entries with the entries done and the checkpoint's size. The report is returned whenever
// the export could be read. With findings, the error is an [*AuditError]
// naming the first bad index; an unreadable key or export wraps
// [ErrMalformed] and a checkpoint not signed by the pinned key is a
// [*CheckpointError], both with a nil report.
func Audit(ctx context.Context, r io.Reader, vkey string, progress func(done, total uint64)) (*AuditReport, error) {
	return AuditWith(ctx, r, vkey, progress, Options{})
}

// AuditWith is [Audit] with the given options.
func AuditWith(ctx context.Context, r io.Reader, vkey string, progress func(done, total uint64), opts Options) (*AuditReport, error) {
	s, err := scan(ctx, r, vkey, true, progress, opts)
	if err != nil {
		return nil, err
	}
	rep := s.auditReport()
	s.witnessReport(rep)
	return rep, s.err()
}

// scanner is the state of one pass over an export.
type scanner struct {
	ctx      context.Context
	cp       *Checkpoint
	replay   bool
	progress func(done, total uint64)
	opts     Options
	st       *state.State // the log's state up to the entry being read
	unproven uint64       // decisions whose input names a subject country

	n         uint64 // entries read
	prevLeaf  []byte
	prevTime  time.Time
	firstTime time.Time
	rng       *compact.Range
	hasher    sha256Leaf

	subjects map[string]*subjectHead
	erased   int
	policies map[uint64]*policyRec
	breaches map[string]*breachRec
	order    []string // breach ids by detection
	rule2    auditRule2

	kinds     map[string]uint64
	decisions struct{ allowed, denied uint64 }

	mu       sync.Mutex
	findings []Finding
	total    int
	wit      *auditWitness // the witness check, with pinned witness keys
	jobs     chan replayJob
	wg       sync.WaitGroup
	replayed uint64 // under mu
}

type subjectHead struct {
	index  uint64
	leaf   [hashSize]byte
	erased bool
}

type policyRec struct {
	index  uint64
	digest string
	files  []policies.File
	bad    bool // does not compile: reported once
}

type replayJob struct {
	index   uint64
	set     *policies.Set
	policy  uint64
	input   []byte
	allow   bool
	reasons []string
}

var zeroLeaf = make([]byte, hashSize)

// scan reads and checks the whole export; replay says whether decisions are
// replayed.
func scan(ctx context.Context, r io.Reader, vkey string, replay bool, progress func(done, total uint64), opts Options) (*scanner, error) {
	key, err := ParseKey(vkey)
	if err != nil {
		return nil, err
	}
	er, err := export.NewReader(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	cp, err := VerifyCheckpoint(er.Checkpoint, key)
	if err != nil {
		return nil, err
	}
	s := &scanner{
		ctx: ctx, cp: cp, replay: replay, progress: progress, opts: opts, st: state.New(),
		prevLeaf: zeroLeaf,
		rng:      (&compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}).NewEmptyRange(0),
		subjects: map[string]*subjectHead{}, policies: map[uint64]*policyRec{},
		breaches: map[string]*breachRec{}, kinds: map[string]uint64{},
	}
	if opts.Witnesses != nil {
		s.newAuditWitness(er.Kept, key, opts.Witnesses)
	}
	if replay {
		s.startReplay()
	}
	err = s.entries(er)
	if replay {
		close(s.jobs)
		s.wg.Wait()
	}
	if err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	s.finishLog()
	s.finishWitness()
	s.finishBreaches()
	s.sortFindings()
	if progress != nil {
		progress(s.n, cp.Size)
	}
	return s, nil
}

// err returns the scan's verdict: nil, or an *AuditError.
func (s *scanner) err() error {
	if s.total == 0 {
		return nil
	}
	f := s.findings[0]
	return &AuditError{First: &f, Total: s.total}
}

func (s *scanner) entries(er *export.Reader) error {
	for {
		_, data, err := er.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if s.n >= s.cp.Size {
			s.find(AuditRoot, s.n, "more entries", fmt.Sprintf("%d entries", s.cp.Size),
				"the export holds an entry beyond the checkpoint's size, which the signature does not cover; the audit stops reading here")
			return nil
		}
		s.entry(s.n, data)
		s.n++
		s.witnessRoot()
		if s.n%progressEvery == 0 {
			if err := s.ctx.Err(); err != nil {
				return err
			}
			if s.progress != nil {
				s.progress(s.n, s.cp.Size)
			}
		}
	}
}

// sha256Leaf computes RFC 6962 leaf hashes with one reused hash state.
type sha256Leaf struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
		Reset()
	}
}

func (l *sha256Leaf) leaf(data []byte) []byte {
	if l.h == nil {
		l.h = sha256.New()
	}
	l.h.Reset()
	l.h.Write([]byte{0})
	l.h.Write(data)
	return l.h.Sum(make([]byte, 0, hashSize))
}

func (s *scanner) find(check string, index uint64, got, want, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.findings = append(s.findings, Finding{Check: check, Index: index, HasIndex: true, Message: fmt.Sprintf(format, args...), Got: got, Want: want})
	if len(s.findings) >= 2*MaxFindings { // keep the lowest indexes; replays report out of order
		s.sortFindings()
	}
}

// sortFindings orders the findings by index (those about the whole log
// last) and keeps the first MaxFindings.
func (s *scanner) sortFindings() {
	slices.SortStableFunc(s.findings, func(a, b Finding) int {
		switch {
		case a.HasIndex != b.HasIndex:
			if a.HasIndex {
				return -1
			}
			return 1
		case a.Index < b.Index:
			return -1
		case a.Index > b.Index:
			return 1
		}
		return 0
	})
	if len(s.findings) > MaxFindings {
		s.findings = s.findings[:MaxFindings]
	}
}

// entry checks entry i.
func (s *scanner) entry(i uint64, data []byte) {
	leaf := s.hasher.leaf(data)
	// The range only fails on a bad hash size, which leaf never makes.
	_ = s.rng.Append(leaf, nil)
	defer func() { s.prevLeaf = leaf }()

	e, err := decodeEntry(data)
	if err != nil {
		s.find(AuditEntry, i, "", "", "the entry bytes do not decode: %v", err)
		s.kinds["undecodable"]++
		return
	}
	s.witnessTime(i, e)
	kind := eventKind(e)
	s.kinds[kind]++
	if e.Event == nil {
		s.find(AuditEntry, i, "", "", "the entry has no event")
	}
	if e.Index != i {
		s.find(AuditIndex, i, fmt.Sprint(e.Index), fmt.Sprint(i), "the entry's index field is not its position in the log")
	}
	if !bytes.Equal(e.PrevHash, s.prevLeaf) {
		what := "the leaf hash of the entry before it"
		if i == 0 {
			what = "32 zero bytes, for the first entry"
		}
		s.find(AuditHashChain, i, hex.EncodeToString(e.PrevHash), hex.EncodeToString(s.prevLeaf), "prev_hash is not %s: this entry or the one before was altered, or an entry was removed", what)
	}
	t := timeOf(e.RecordedAt)
	if e.RecordedAt == nil || e.RecordedAt.CheckValid() != nil {
		s.find(AuditTimeOrder, i, "", "", "recorded_at is missing or invalid")
	} else {
		if i > 0 && t.Before(s.prevTime) {
			s.find(AuditTimeOrder, i, fmtGoTime(t), "at or after "+fmtGoTime(s.prevTime), "recorded_at goes back in time")
		}
		if i == 0 || s.firstTime.IsZero() {
			s.firstTime = t
		}
		if t.After(s.prevTime) {
			s.prevTime = t
		}
	}

	if isConsentEvent(e) {
		s.consentEvent(i, e, leaf)
	}
	// The state index folds the entry after the checks that need the
	// state before it.
	defer s.st.Apply(e, &pb.EntryRef{Index: i, LeafHash: leaf, RecordedAt: e.RecordedAt})
	switch ev := e.Event.(type) {
	case *pb.Entry_SendDecision:
		s.decision(i, e, ev.SendDecision)
	case *pb.Entry_PolicyPublished:
		s.policy(i, ev.PolicyPublished)
	case *pb.Entry_NoticePublished:
		s.notice(i, ev.NoticePublished)
	case *pb.Entry_PlanPublished:
		s.plan(i, ev.PlanPublished)
	case *pb.Entry_ConsentGranted:
		s.grantNotice(i, e, ev.ConsentGranted)
	case *pb.Entry_BreachDetected, *pb.Entry_BreachAuthorityNotified, *pb.Entry_BreachSubjectsNotified, *pb.Entry_BreachClosed,
		*pb.Entry_BreachAssessed:
		s.breach(i, e)
	}
}

func (s *scanner) consentEvent(i uint64, e *pb.Entry, leaf []byte) {
	if e.SubjectId == "" {
		s.find(AuditSubjects, i, "", "a subject_id", "a %s names no subject", eventKind(e))
		return
	}
	h := s.subjects[e.SubjectId]
	switch {
	case h != nil && h.erased:
		s.find(AuditSubjects, i, "", "", "a %s for subject %s, who was erased at entry #%d", eventKind(e), e.SubjectId, h.index)
	case h == nil && (e.SubjectPrevIndex != nil || len(e.SubjectPrevHash) > 0):
		s.find(AuditSubjects, i, fmt.Sprintf("#%d", e.GetSubjectPrevIndex()), "none",
			"the subject's first consent event names a previous one: the chain is incomplete (an earlier event is missing)")
	case h != nil && (e.SubjectPrevIndex == nil || *e.SubjectPrevIndex != h.index):
		got := "none"
		if e.SubjectPrevIndex != nil {
			got = fmt.Sprintf("#%d", *e.SubjectPrevIndex)
		}
		s.find(AuditSubjects, i, got, fmt.Sprintf("#%d", h.index), "the consent event does not name the subject's previous consent event: the chain forks or skips")
	case h != nil && !bytes.Equal(e.SubjectPrevHash, h.leaf[:]):
		s.find(AuditSubjects, i, hex.EncodeToString(e.SubjectPrevHash), hex.EncodeToString(h.leaf[:]), "the consent event names the subject's previous consent event #%d with another leaf hash", h.index)
	}
	if h == nil {
		h = &subjectHead{}
		s.subjects[e.SubjectId] = h
	}
	h.index = i
	copy(h.leaf[:], leaf)
	if _, ok := e.Event.(*pb.Entry_SubjectErased); ok && !h.erased {
		h.erased = true
		s.erased++
	}
}

func (s *scanner) decision(i uint64, e *pb.Entry, d *pb.SendDecision) {
	if d.Allow {
		s.decisions.allowed++
	} else {
		s.decisions.denied++
	}
	if e.SubjectId == "" {
		s.find(AuditSubjects, i, "", "a subject_id", "the send decision names no subject")
	} else {
		h := s.subjects[e.SubjectId]
		switch {
		case h != nil && h.erased:
			s.find(AuditSubjects, i, "", "", "a send decision for subject %s, who was erased at entry #%d", e.SubjectId, h.index)
		case h == nil && (e.ConsentHeadIndex != nil || len(e.ConsentHeadHash) > 0):
			s.find(AuditSubjects, i, fmt.Sprintf("#%d", e.GetConsentHeadIndex()), "none", "the decision names a consent head, but its subject has no consent event before it")
		case h != nil && (e.ConsentHeadIndex == nil || *e.ConsentHeadIndex != h.index):
			got := "none"
			if e.ConsentHeadIndex != nil {
				got = fmt.Sprintf("#%d", *e.ConsentHeadIndex)
			}
			s.find(AuditSubjects, i, got, fmt.Sprintf("#%d", h.index), "the decision's consent head is not its subject's latest consent event")
		case h != nil && !bytes.Equal(e.ConsentHeadHash, h.leaf[:]):
			s.find(AuditSubjects, i, hex.EncodeToString(e.ConsentHeadHash), hex.EncodeToString(h.leaf[:]), "the decision names its consent head #%d with another leaf hash", h.index)
		}
	}
	for _, ci := range d.ConsentIndexes {
		if h := e.ConsentHeadIndex; h == nil || ci > *h {
			s.find(AuditSubjects, i, fmt.Sprintf("#%d", ci), "at or before the consent head", "the decision relies on consent entry #%d, which is not on its subject's chain up to the head", ci)
			break
		}
	}
	s.derived(i, e, d)
	p := s.policies[d.PolicyIndex]
	switch {
	case p == nil:
		s.find(AuditPolicies, i, fmt.Sprintf("#%d", d.PolicyIndex), "a policy entry before the decision", "the decision names policy entry #%d, which is not a policy published before it", d.PolicyIndex)
		return
	case p.digest != d.PolicyDigest:
		s.find(AuditPolicies, i, d.PolicyDigest, p.digest, "the decision's policy digest is not the digest of policy entry #%d", d.PolicyIndex)
		return
	}
	if cur := s.st.Policy(); cur != nil && cur.GetEntry().GetIndex() != d.PolicyIndex {
		s.find(AuditPolicies, i, fmt.Sprintf("#%d", d.PolicyIndex), fmt.Sprintf("#%d", cur.GetEntry().GetIndex()),
			"the decision names policy entry #%d, but policy entry #%d superseded it before the decision", d.PolicyIndex, cur.GetEntry().GetIndex())
	}
	if !s.replay || p.bad {
		return
	}
	set, err := compiled(s.ctx, p.digest, p.files)
	if err != nil {
		if s.ctx.Err() == nil {
			p.bad = true
			s.find(AuditReplay, p.index, "", "", "policy entry #%d does not compile, so no decision it made can be replayed: %v", p.index, err)
		}
		return
	}
	s.jobs <- replayJob{index: i, set: set, policy: p.index, input: d.Input, allow: d.Allow, reasons: d.Reasons}
}

func (s *scanner) startReplay() {
	workers := runtime.GOMAXPROCS(0)
	s.jobs = make(chan replayJob, 64*workers)
	for range workers {
		s.wg.Go(func() {
			var n uint64
			limit := s.opts.replayTimeout()
			for j := range s.jobs {
				n++
				ctx, cancel := context.WithTimeout(s.ctx, limit)
				dec, err := j.set.Decide(ctx, j.input)
				timedOut := ctx.Err() != nil
				cancel()
				switch {
				case err != nil && s.ctx.Err() != nil:
					continue
				case err != nil && timedOut:
					s.find(AuditReplay, j.index, "", "", "replaying the recorded input with policy #%d did not finish within %s (--replay-timeout): the policy does not terminate on it", j.policy, limit)
				case err != nil:
					s.find(AuditReplay, j.index, "", "", "replaying the recorded input with policy #%d fails: %v", j.policy, err)
				case dec.Allow != j.allow || !slices.Equal(dec.Reasons, j.reasons):
					s.find(AuditReplay, j.index, formatResult(dec.Allow, dec.Reasons), formatResult(j.allow, j.reasons),
						"replaying the recorded input with policy #%d gives another result than the recorded one", j.policy)
				}
			}
			s.mu.Lock()
			s.replayed += n
			s.mu.Unlock()
		})
	}
}

func (s *scanner) policy(i uint64, pp *pb.PolicyPublished) {
	files := policyFiles(pp)
	if got := policies.Digest(files); got != pp.Digest {
		s.find(AuditPolicies, i, got, pp.Digest, "the digest recomputed over the policy's %d files is not the recorded one", len(files))
		return
	}
	s.policies[i] = &policyRec{index: i, digest: pp.Digest, files: files}
}

// finishLog compares the count and root with the checkpoint.
func (s *scanner) finishLog() {
	if s.n != s.cp.Size {
		first := s.n // the first missing entry
		if s.n > s.cp.Size {
			first = s.cp.Size // the first entry beyond the checkpoint
		}
		s.find(AuditRoot, first, fmt.Sprintf("%d entries", s.n), fmt.Sprintf("%d entries", s.cp.Size), "the export does not hold exactly the entries of the checkpoint's tree")
		return
	}
	root, err := s.rng.GetRootHash(nil)
	if s.n == 0 {
		root, err = rfc6962.DefaultHasher.EmptyRoot(), nil
	}
	if err != nil || !bytes.Equal(root, s.cp.Root) {
		s.total++ // after the replays: no lock needed
		s.findings = append(s.findings, Finding{Check: AuditRoot, Message: "the entries do not hash to the checkpoint's root: the export is not the log the checkpoint signs",
			Got: hex.EncodeToString(root), Want: s.cp.RootHex()})
	}
}
