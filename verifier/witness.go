package verifier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	fnote "github.com/transparency-dev/formats/note"
	"golang.org/x/mod/sumdb/note"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// WitnessClockTolerance is how far an entry's recorded_at, truncated to the
// second, may be after a witness's timestamp on a checkpoint that includes
// it before that is a finding. Cosignature timestamps are whole seconds
// (C2SP tlog-cosignature) taken on the witness's clock; one second covers
// the truncation and a small skew between the two clocks.
const WitnessClockTolerance = time.Second

// Witnesses are the pinned witness keys and the quorum an auditor requires
// (`consentverify --witness VKEY ... --quorum K`). A cosignature is trusted
// only when it verifies with one of these keys; any other is ignored.
type Witnesses struct {
	verifiers []note.Verifier
	keys      []string
	// Quorum is how many valid cosignatures from distinct pinned keys a
	// checkpoint needs. It may exceed the number of keys: then no
	// checkpoint can meet it and verification fails.
	Quorum int
}

// ParseWitnesses parses witness verifier keys ("<name>+<hash>+<base64>",
// Ed25519 or cosignature/v1, as the witness prints it) with
// github.com/transparency-dev/formats/note. quorum 0 means all the keys.
// An unparsable key wraps [ErrMalformed].
func ParseWitnesses(vkeys []string, quorum int) (*Witnesses, error) {
	if quorum < 0 {
		return nil, malformedf("a quorum of %d witnesses: give a positive number", quorum)
	}
	w := &Witnesses{Quorum: quorum}
	if quorum == 0 {
		w.Quorum = len(vkeys)
	}
	for _, k := range vkeys {
		k = strings.TrimSpace(k)
		v, err := fnote.NewVerifierForCosignatureV1(k)
		if err != nil {
			return nil, malformedf("witness key %q is not a verifier key of the form <name>+<hash>+<base64>: %v", k, err)
		}
		w.verifiers = append(w.verifiers, v)
		w.keys = append(w.keys, k)
	}
	return w, nil
}

// Cosignature is a verified witness cosignature: the witness's key name
// and hash, and the time the witness states it saw the checkpoint.
type Cosignature struct {
	Witness string    `json:"witness"`
	KeyHash string    `json:"key_hash"`
	Time    time.Time `json:"time"`
}

// WitnessReport says which pinned witnesses cosigned the checkpoint that
// carries the evidence, and whether the quorum was met.
type WitnessReport struct {
	Quorum int `json:"quorum"`
	Pinned int `json:"pinned"`
	// Size is the size of the cosigned checkpoint (the bundle's own, or the
	// later one of field 7 that extends it).
	Size uint64 `json:"size"`
	// Upgraded is true when the cosignatures come from field 7.
	Upgraded     bool          `json:"upgraded,omitempty"`
	Cosignatures []Cosignature `json:"cosignatures"`
	// Ignored are signers on the note whose keys are not pinned.
	Ignored []string `json:"ignored,omitempty"`
	// Failure says why the witness check failed (empty: it passed).
	Failure string `json:"failure,omitempty"`
}

// WitnessError is a failed witness check: a cosignature by a pinned key
// that does not verify, or fewer valid ones than the quorum. It wraps
// [ErrInvalid].
type WitnessError struct {
	Reason string
	Err    error
}

func (e *WitnessError) Error() string { return "witnesses: " + e.Reason }

// Unwrap returns ErrInvalid and the underlying error.
func (e *WitnessError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrInvalid, e.Err}
	}
	return []error{ErrInvalid}
}

// VerifyCosignatures checks the witness cosignatures on a checkpoint note
// that carries a valid signature by the log's key: each signature line by a
// pinned witness key must verify (cosignature/v1 over this very checkpoint,
// so a cosignature copied from another root fails), and at least Quorum
// distinct pinned witnesses must have cosigned. Signatures by keys that are
// not pinned are listed as ignored and never count. On failure the error
// is a [*WitnessError]; the cosignatures found are returned either way.
func (w *Witnesses) VerifyCosignatures(raw []byte, logKey *Key) ([]Cosignature, []string, error) {
	vs := append(append([]note.Verifier(nil), logKey.vs...), w.verifiers...)
	n, err := note.Open(raw, note.VerifierList(vs...))
	if err != nil {
		var invalid *note.InvalidSignatureError
		if errors.As(err, &invalid) {
			return nil, nil, &WitnessError{Reason: fmt.Sprintf("the signature by %s+%08x does not verify: it was altered, or made for another checkpoint", invalid.Name, invalid.Hash), Err: err}
		}
		return nil, nil, &WitnessError{Reason: "the checkpoint is not a signed note", Err: err}
	}
	var out []Cosignature
	for _, s := range n.Sigs {
		if logKey.signedBy(s.Name, s.Hash) {
			continue
		}
		t, err := fnote.CoSigV1Timestamp(s)
		if err != nil {
			return nil, nil, &WitnessError{Reason: fmt.Sprintf("the cosignature by %s+%08x has no timestamp", s.Name, s.Hash), Err: err}
		}
		out = append(out, Cosignature{Witness: s.Name, KeyHash: fmt.Sprintf("%08x", s.Hash), Time: t.UTC()})
	}
	var ignored []string
	for _, s := range n.UnverifiedSigs {
		ignored = append(ignored, fmt.Sprintf("%s+%08x", s.Name, s.Hash))
	}
	if len(out) < w.Quorum {
		reason := fmt.Sprintf("%d valid cosignatures from pinned witnesses, but the quorum is %d", len(out), w.Quorum)
		if w.Quorum > len(w.verifiers) {
			reason += fmt.Sprintf(" and only %d witness keys are pinned: the quorum cannot be met", len(w.verifiers))
		}
		return out, ignored, &WitnessError{Reason: reason}
	}
	return out, ignored, nil
}

// VerifyEvidenceWitnessed is [VerifyEvidence] that also requires the
// witness quorum (README.md: Witnesses): on the bundle's checkpoint, or, when that
// one lacks it, on the later checkpoint of field 7 (signed by the log's
// key, cosigned, and proven to extend the bundle's checkpoint). The
// report's Witness part says "witnessed by W at T: this decision existed
// no later than T" for each cosignature; a decision recorded later than a
// witness's timestamp (beyond [WitnessClockTolerance]) fails the check.
func VerifyEvidenceWitnessed(ctx context.Context, bundleJSON []byte, vkey string, w *Witnesses) (*EvidenceReport, error) {
	return VerifyEvidenceWith(ctx, bundleJSON, vkey, Options{Witnesses: w})
}

// witnessCheck adds the witness check of w to the report r of bundle b.
func witnessCheck(b *pb.EvidenceBundle, key *Key, r *EvidenceReport, w *Witnesses) (*EvidenceReport, error) {
	wr, werr := checkBundleWitnesses(b, key, r, w)
	r.Witness = wr
	if werr != nil {
		wr.Failure = werr.Reason
		r.Verified, r.Outcome = false, OutcomeFailed
		r.Summary = "The bundle is authentic, but it is NOT witnessed as required: " + werr.Reason + ". " + r.Summary
		return r, werr
	}
	return r, nil
}

func checkBundleWitnesses(b *pb.EvidenceBundle, key *Key, r *EvidenceReport, w *Witnesses) (*WitnessReport, *WitnessError) {
	wr := &WitnessReport{Quorum: w.Quorum, Pinned: len(w.verifiers), Size: r.Checkpoint.Size}
	cos, ignored, err := w.VerifyCosignatures([]byte(b.Checkpoint), key)
	wr.Cosignatures, wr.Ignored = cos, ignored
	var we *WitnessError
	if err != nil && b.Witnessed != nil && b.Witnessed.Checkpoint != "" {
		// Field 7: a later checkpoint that carries the cosignatures.
		later, cerr := VerifyCheckpoint([]byte(b.Witnessed.Checkpoint), key)
		if cerr != nil {
			return wr, &WitnessError{Reason: "the later checkpoint (field 7) " + strings.TrimPrefix(cerr.Error(), "checkpoint: "), Err: cerr}
		}
		if cerr := CheckConsistency(r.Checkpoint, later, b.Witnessed.ConsistencyProof); cerr != nil {
			return wr, &WitnessError{Reason: fmt.Sprintf("the later checkpoint of size %d (field 7) does not extend the bundle's checkpoint of size %d: %v", later.Size, r.Checkpoint.Size, cerr), Err: cerr}
		}
		wr.Size, wr.Upgraded = later.Size, true
		cos, ignored, err = w.VerifyCosignatures([]byte(b.Witnessed.Checkpoint), key)
		wr.Cosignatures, wr.Ignored = cos, ignored
	}
	if err != nil {
		errors.As(err, &we)
		return wr, we
	}
	if d := r.Decision; d != nil {
		at := d.RecordedAt.Truncate(time.Second)
		for _, c := range cos {
			if at.Sub(c.Time) > WitnessClockTolerance {
				return wr, &WitnessError{Reason: fmt.Sprintf("decision #%d was recorded at %s, after witness %s cosigned a checkpoint including it at %s: the operator's clock is not true",
					d.Index, at.Format(time.RFC3339), c.Witness, c.Time.Format(time.RFC3339))}
			}
		}
	}
	return wr, nil
}

// Text returns the witness part of a report.
func (wr *WitnessReport) Text(subject string) string {
	var b strings.Builder
	via := fmt.Sprintf("the checkpoint of size %d", wr.Size)
	if wr.Upgraded {
		via = fmt.Sprintf("the later checkpoint of size %d (field 7), which extends the bundle's", wr.Size)
	}
	mark := "✓"
	if wr.Failure != "" {
		mark = "✗"
	}
	fmt.Fprintf(&b, "\nWitnesses: %s %d of %d pinned witnesses cosigned %s (quorum %d)\n", mark, len(wr.Cosignatures), wr.Pinned, via, wr.Quorum)
	for _, c := range wr.Cosignatures {
		fmt.Fprintf(&b, "  witnessed by %s at %s: %s existed no later than %s\n", c.Witness, c.Time.Format(time.RFC3339), subject, c.Time.Format(time.RFC3339))
	}
	for _, s := range wr.Ignored {
		fmt.Fprintf(&b, "  ignored: a signature by %s, which is not a pinned key\n", s)
	}
	if wr.Failure != "" {
		fmt.Fprintf(&b, "  failed: %s\n", wr.Failure)
	}
	return b.String()
}

// CheckpointWitnesses verifies raw with the log's key and then its
// cosignatures against w, for `consentverify consistency|audit --witness`.
// subject names what the report lines say existed ("every entry of this
// checkpoint").
func (w *Witnesses) CheckpointWitnesses(raw []byte, key *Key) (*WitnessReport, error) {
	cp, err := VerifyCheckpoint(raw, key)
	if err != nil {
		return nil, err
	}
	wr := &WitnessReport{Quorum: w.Quorum, Pinned: len(w.verifiers), Size: cp.Size}
	cos, ignored, err := w.VerifyCosignatures(raw, key)
	wr.Cosignatures, wr.Ignored = cos, ignored
	var we *WitnessError
	if errors.As(err, &we) {
		wr.Failure = we.Reason
	}
	return wr, err
}
