package verifier

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// AuditWitness names the audit's witness check (only with pinned witness
// keys): the export's kept checkpoints are signed by the log, their roots
// are the entries' at their sizes, their pinned cosignatures verify, one of
// them carries the quorum, and no entry was recorded after a witness's
// timestamp on a checkpoint that includes it.
const AuditWitness = "witness"

// AuditWitnessed is [Audit] that also runs the witness check with the
// pinned witnesses w over the kept checkpoints of a version 2 export
// (README.md: Witnesses): each entry's time is bounded by the first witnessed
// checkpoint that includes it.
func AuditWitnessed(ctx context.Context, r io.Reader, vkey string, w *Witnesses, progress func(done, total uint64)) (*AuditReport, error) {
	return AuditWith(ctx, r, vkey, progress, Options{Witnesses: w})
}

// witnessReport adds the witness check to rep when witnesses were pinned.
func (s *scanner) witnessReport(rep *AuditReport) {
	if s.wit == nil {
		return
	}
	rep.Witness = s.wit.report
	n := 0
	for _, f := range s.findings {
		if f.Check == AuditWitness {
			n++
		}
	}
	res := CheckResult{Name: AuditWitness, Status: StatusPassed, Detail: s.wit.detail()}
	if n > 0 {
		res.Status, res.Detail = StatusFailed, plural(n, "finding")+"."
	}
	rep.Checks = append(rep.Checks, res)
}

// keptCheckpoint is one kept checkpoint of the export.
type keptCheckpoint struct {
	cp  *Checkpoint
	cos []Cosignature // valid cosignatures by pinned witnesses
	// earliest is the earliest cosignature time when cos meets the quorum.
	earliest time.Time
	quorum   bool
}

// auditWitness is the witness check's state during a scan.
type auditWitness struct {
	w    *Witnesses
	kept []keptCheckpoint // by size, log signature verified
	next int              // the next kept checkpoint whose root is compared
	// bounds are the witnessed checkpoints by size, each with the earliest
	// witness time of it or any larger one (a suffix minimum); bp is the
	// first one that includes the current entry.
	bounds []keptCheckpoint
	bp     int
	report *WitnessReport
}

// newAuditWitness verifies the kept checkpoints' signatures and
// cosignatures; what fails is a finding.
func (s *scanner) newAuditWitness(kept [][]byte, key *Key, w *Witnesses) {
	aw := &auditWitness{w: w, report: &WitnessReport{Quorum: w.Quorum, Pinned: len(w.verifiers)}}
	s.wit = aw
	for i, raw := range kept {
		cp, err := VerifyCheckpoint(raw, key)
		if err != nil {
			s.findLog(AuditWitness, "", "", "kept checkpoint %d: %v", i, err)
			continue
		}
		k := keptCheckpoint{cp: cp}
		cos, _, err := w.VerifyCosignatures(raw, key)
		var we *WitnessError
		if errors.As(err, &we) && we.Err != nil {
			s.findLog(AuditWitness, "", "", "the kept checkpoint of size %d: %s", cp.Size, we.Reason)
			continue
		}
		k.cos, k.quorum = cos, len(cos) >= w.Quorum && len(cos) > 0
		for _, c := range cos {
			if k.earliest.IsZero() || c.Time.Before(k.earliest) {
				k.earliest = c.Time
			}
		}
		aw.kept = append(aw.kept, k)
	}
	slices.SortStableFunc(aw.kept, func(a, b keptCheckpoint) int { return cmpUint(a.cp.Size, b.cp.Size) })
	for _, k := range aw.kept {
		if k.quorum && k.cp.Size > 0 {
			aw.bounds = append(aw.bounds, k)
		}
	}
	for i := len(aw.bounds) - 2; i >= 0; i-- {
		if aw.bounds[i+1].earliest.Before(aw.bounds[i].earliest) {
			aw.bounds[i].earliest = aw.bounds[i+1].earliest
		}
	}
	if len(aw.bounds) > 0 {
		last := aw.bounds[len(aw.bounds)-1]
		aw.report.Size, aw.report.Cosignatures = last.cp.Size, last.cos
	}
	s.witnessRoot() // kept checkpoints of size 0
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// findLog records a finding about the log as a whole.
func (s *scanner) findLog(check, got, want, format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total++
	s.findings = append(s.findings, Finding{Check: check, Message: fmt.Sprintf(format, args...), Got: got, Want: want})
}

// witnessRoot compares the roots of the kept checkpoints of the size read
// so far with the entries' root at that size.
func (s *scanner) witnessRoot() {
	aw := s.wit
	if aw == nil {
		return
	}
	for aw.next < len(aw.kept) && aw.kept[aw.next].cp.Size <= s.n {
		k := aw.kept[aw.next]
		aw.next++
		if k.cp.Size < s.n {
			continue // a duplicate size: compared already
		}
		root, err := s.rng.GetRootHash(nil)
		if s.n == 0 {
			root, err = rfc6962.DefaultHasher.EmptyRoot(), nil
		}
		if err != nil || !bytes.Equal(root, k.cp.Root) {
			s.find(AuditWitness, s.n-min(s.n, 1), hex.EncodeToString(root), k.cp.RootHex(),
				"the log signed a checkpoint of size %d whose root is not the entries' root at that size: a fork the witnesses may have seen", k.cp.Size)
		}
	}
}

// witnessTime checks entry i's recorded_at against the earliest witness
// timestamp of a witnessed checkpoint that includes it.
func (s *scanner) witnessTime(i uint64, e *pb.Entry) {
	aw := s.wit
	if aw == nil || e.RecordedAt == nil {
		return
	}
	for aw.bp < len(aw.bounds) && aw.bounds[aw.bp].cp.Size <= i {
		aw.bp++
	}
	if aw.bp == len(aw.bounds) {
		return // not yet witnessed
	}
	at := timeOf(e.RecordedAt).Truncate(time.Second)
	if b := aw.bounds[aw.bp].earliest; at.Sub(b) > WitnessClockTolerance {
		s.find(AuditWitness, i, at.UTC().Format(time.RFC3339), "no later than "+b.Format(time.RFC3339)+" (+1 s)",
			"recorded_at is after a witness's timestamp on a checkpoint that includes the entry: the operator's clock is not true")
	}
}

// finishWitness requires a checkpoint with the quorum.
func (s *scanner) finishWitness() {
	aw := s.wit
	if aw == nil {
		return
	}
	if len(aw.bounds) == 0 {
		aw.report.Failure = fmt.Sprintf("no checkpoint in the export carries %d valid cosignatures from pinned witnesses", aw.w.Quorum)
		if aw.w.Quorum > len(aw.w.verifiers) {
			aw.report.Failure += fmt.Sprintf(" (only %d keys are pinned: the quorum cannot be met)", len(aw.w.verifiers))
		}
		if len(aw.kept) == 0 {
			aw.report.Failure += "; the export carries no kept checkpoints (export it again with this version: format v2)"
		}
		s.findLog(AuditWitness, "", "", "%s", aw.report.Failure)
	}
}

// detail is the passed check's sentence.
func (aw *auditWitness) detail() string {
	return fmt.Sprintf("%d kept checkpoints are signed by the log and match the entries; the largest with the quorum of %d has size %d; no entry was recorded after a witness saw it.",
		len(aw.kept), aw.w.Quorum, aw.report.Size)
}
