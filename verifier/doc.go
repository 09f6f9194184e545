// Package verifier checks what a consentledger log claims, offline, with
// nothing but the log's public verifier key: that consent existed when a
// message was sent (an evidence bundle), that the log only grew (a
// consistency proof), and that a whole exported log is intact and its
// decisions and breach notifications hold up (an audit). It is the library
// behind the auditor's command consentverify; it talks to no server and
// trusts nothing it is given except the pinned key.
//
// # The pinned key
//
// Every check starts from the verifier key the log's operator publishes
// (`consentledger pubkey`), "<origin>+<hash>+<base64>". Get it from the
// operator once, out of band, and keep it: it is the only thing the
// verifier trusts. A checkpoint — the log's signed statement "my tree of
// size N has root R" (C2SP tlog-checkpoint in a C2SP signed note) — is
// accepted only with a valid signature by that key ([VerifyCheckpoint]).
// Other signatures on a checkpoint (witness cosignatures) are allowed but
// never trusted, and no key inside a bundle or export is ever used.
//
// # Proving one send: evidence bundles
//
// For a send decision, the operator hands out an evidence bundle
// (`consentledger evidence --decision N`): one JSON file with a signed
// checkpoint, the decision entry, the subject's consent events from the first
// (older bundles: from the opt-in the decision relied on) up to the latest
// one before the decision, the policy entry and the subject's last allowed
// send the decision's input names, each as the exact bytes stored in the
// log with an RFC 6962 inclusion proof. [VerifyEvidence] runs the six
// checks of the design (§8), in order, and stops at the first that fails:
//
//  1. signature — the checkpoint is signed by the pinned key;
//  2. inclusion — every entry is in that checkpoint's tree, as stored
//     (entries are hashed as stored, never re-encoded), at the index its own
//     index field names;
//  3. chain — the consent chain runs without a gap from the opt-in to the
//     consent head the decision names, each event naming the one before by
//     index and leaf hash, all about the decision's subject, and none of them
//     withdraws the channel and purpose (or erases the subject): no opt-out
//     can hide between the opt-in and the send;
//  4. grant — the opt-in covers the channel and purpose (marketing for a
//     WhatsApp marketing template), was recorded before the decision, and
//     was confirmed by double opt-in where the decision relied on one;
//  5. policy — the policy entry is the one the decision names, its digest
//     is the decision's and the one recomputed from its files, and
//     re-evaluating the decision's recorded input with it gives exactly the
//     recorded result;
//  6. input — the recorded input is not trusted as such: it must be what the
//     bundle shows, derived with the server's own function (package
//     ledger/state) from the decision's request, the subject's consent
//     events and the last allowed send, with a `now` no later than the
//     decision and not earlier than a bound (state.MaxInputLag). The report
//     lists what a bundle cannot prove alone: open breaches, the policy in
//     force and that no consent event was hidden before the decision (the
//     audit proves these), and the subject's country (only `consentledger
//     subject reveal` shows it).
//
// A denied send verifies as a recorded denial (checks 1, 2, 5 and 6). An allowed
// send that relied on no opt-in — for instance under a policy that allows
// everything — is authentic, but it is not a proof of consent: check 4
// fails and the report says so.
//
// The [EvidenceReport] says in one paragraph what was proven, for a data
// protection officer, lists each check with ✓ or ✗, and shows the verified
// facts; [EvidenceReport.Text] formats it and it marshals to JSON. A failed
// check is a [*CheckError] naming the check, the entry, and what was
// computed against what was expected.
//
//	report, err := verifier.VerifyEvidence(ctx, bundle, pinnedKey)
//	switch {
//	case errors.Is(err, verifier.ErrMalformed): // not a bundle, or not a key
//	case err != nil: // *CheckError: the bundle proves nothing
//	default:
//		fmt.Print(report.Text())
//	}
//
// # Proving the log only grew
//
// Keep the checkpoints you verified. [VerifyConsistency] checks an RFC 6962
// consistency proof between an old and a new checkpoint: the new log
// extends the old one, nothing was changed or removed. Fetch the proof from
// the server (LogService.GetConsistencyProof); it needs no trust, as it is
// checked against both signed roots.
//
// # Auditing a whole log
//
// [Audit] reads an export (`consentledger export`) as a stream and checks
// every entry: the signed checkpoint, each entry's index, the hash chain
// (prev_hash), that time never runs backwards, that the entries hash to the
// checkpoint's root, that every subject's consent chain is linear and
// complete and each decision names its subject's latest consent event, that
// every policy's digest is right, that every decision names the policy in
// force, that every decision's recorded input is exactly the one derived
// from the log before it (consent state on every channel, last allowed
// sends, open breaches, the request; subject.country, which the log cannot
// show, is reported unproven) and replays to its recorded result with its
// policy (each evaluation within [Options.ReplayTimeout]), that an allowed
// decision relies on the grant in force, and that every data breach was notified
// to the supervisory authority within the 72 hours of GDPR Art. 33(1) or
// with the reasons for the delay. It reads nothing beyond the checkpoint's
// size and names the first bad index. [Breaches]
// verifies the log the same way (without replaying decisions) and reports
// each breach: detected, deadline, notified, in time or late, subjects
// told, closed.
//
// # Witnesses
//
// A checkpoint signed by the operator alone cannot show that every auditor
// sees the same log, nor when an entry existed. Witnesses (C2SP
// tlog-witness) cosign checkpoints with their own keys and timestamps
// (cosignature/v1, verified with github.com/transparency-dev/formats/note).
// Pin their keys with [ParseWitnesses] and a quorum K: then
// [VerifyEvidenceWitnessed] and [AuditWitnessed] also require K valid
// cosignatures by pinned keys (on the bundle's checkpoint, or on a later
// one of field 7 proven to extend it; on the export's kept checkpoints), say
// "witnessed by W at T: this decision existed no later than T", and treat
// an entry recorded more than [WitnessClockTolerance] after a witness
// timestamp on a checkpoint that includes it as a failure. A cosignature by
// a key that is not pinned is ignored, never trusted.
//
// # Errors
//
// Every error wraps one of two sentinels: [ErrInvalid], the evidence was
// read and is false (consentverify exits 1), or [ErrMalformed], the input
// could not be read as what it claims to be (exit 2). Verification failures
// carry their evidence: [*CheckError], [*CheckpointError], [*ProofError],
// [*AuditError], [*Finding] and [*WitnessError].
//
// Specifications: RFC 6962 (Merkle tree hashing, inclusion and consistency
// proofs, checked with github.com/transparency-dev/merkle), C2SP
// tlog-checkpoint and signed-note (golang.org/x/mod/sumdb/note), C2SP
// tlog-cosignature, GDPR
// Art. 5(2), 7(1), 7(3) and 33.
package verifier
