package verifier

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// MaxBundleBytes bounds the evidence bundle VerifyEvidence reads.
const MaxBundleBytes = 64 << 20

// ParseBundle decodes an evidence bundle, the protojson of an
// EvidenceBundle (docs/entry-format.md: Evidence bundles). Unknown fields are refused. A bundle without
// a checkpoint, decision or policy entry is malformed. Errors wrap
// [ErrMalformed]; nothing in the bundle is trusted yet.
func ParseBundle(bundleJSON []byte) (*pb.EvidenceBundle, error) {
	if len(bundleJSON) > MaxBundleBytes {
		return nil, malformedf("evidence bundle of %d bytes is larger than %d", len(bundleJSON), MaxBundleBytes)
	}
	b := new(pb.EvidenceBundle)
	if err := protojson.Unmarshal(bundleJSON, b); err != nil {
		return nil, malformedf("not an evidence bundle (protojson of consentledger.v1.EvidenceBundle): %v", err)
	}
	switch {
	case b.Checkpoint == "":
		return nil, malformedf("the evidence bundle has no checkpoint")
	case b.Decision == nil:
		return nil, malformedf("the evidence bundle has no decision entry")
	case b.Policy == nil:
		return nil, malformedf("the evidence bundle has no policy entry")
	}
	for i, pe := range b.Chain {
		if pe == nil {
			return nil, malformedf("chain[%d] of the evidence bundle is empty", i)
		}
	}
	return b, nil
}

// VerifyEvidence verifies an evidence bundle (protojson, as GetEvidence and
// `consentledger evidence` write it) against the pinned verifier key vkey,
// with the six checks of docs/entry-format.md: Evidence bundles, in order, stopping at the first that
// fails:
//
//  1. the checkpoint is signed by the pinned key;
//  2. every entry (decision, chain, policy, last allowed send) is included
//     in that checkpoint and its own index field is the index it is proven
//     at;
//  3. the consent chain runs unbroken, from the grant the decision relied on
//     or from the subject's first consent event before it, to the consent
//     head the decision names, about the decision's subject, and no event
//     after the grant withdraws the channel and purpose;
//  4. the grant covers the channel and purpose, was recorded before the
//     decision, and was confirmed by double opt-in where the decision relied
//     on one;
//  5. the policy entry is the one the decision names, its digest is the
//     decision's and the one recomputed from its files, and replaying the
//     decision's recorded input with it gives the recorded result (within
//     [Options.ReplayTimeout]);
//  6. the recorded input agrees with what the bundle shows: its now is not
//     after the decision's recorded_at nor more than state.MaxInputLag
//     before it, its request is the decision's, its consent state is the one
//     derived (package ledger/state) from the subject's consent events on
//     the chain, and its last allowed send is the bundle's
//     last_allowed_send entry. What the bundle cannot show is listed in the
//     report's NotProven: open breaches, the policy in force and that the
//     head was the latest (the audit proves these), the subject's country
//     (only `subject reveal` shows it), and in bundles written before check
//     6 the consent state or the last send ("not shown", not failed).
//
// A denied send verifies as a recorded denial (checks 1, 2, 5 and 6). An
// allowed send that relied on no consent is authentic but proves no consent:
// check 4 fails.
//
// The report is returned whenever the bundle could be read, also when a
// check fails; it then lists the checks that passed and the one that failed.
// A failed check is a [*CheckError] wrapping [ErrInvalid]; an unreadable key
// or bundle wraps [ErrMalformed] and comes with a nil report.
func VerifyEvidence(ctx context.Context, bundleJSON []byte, vkey string) (*EvidenceReport, error) {
	return VerifyEvidenceWith(ctx, bundleJSON, vkey, Options{})
}

// VerifyEvidenceWith is [VerifyEvidence] with the given options.
func VerifyEvidenceWith(ctx context.Context, bundleJSON []byte, vkey string, opts Options) (*EvidenceReport, error) {
	key, err := ParseKey(vkey)
	if err != nil {
		return nil, err
	}
	b, err := ParseBundle(bundleJSON)
	if err != nil {
		return nil, err
	}
	return VerifyBundleWith(ctx, b, key, opts)
}

// VerifyBundle is [VerifyEvidence] for a decoded bundle and a parsed key.
func VerifyBundle(ctx context.Context, b *pb.EvidenceBundle, key *Key) (*EvidenceReport, error) {
	return VerifyBundleWith(ctx, b, key, Options{})
}

// VerifyBundleWith is [VerifyBundle] with the given options.
func VerifyBundleWith(ctx context.Context, b *pb.EvidenceBundle, key *Key, opts Options) (*EvidenceReport, error) {
	v := &evidence{b: b, key: key, r: newEvidenceReport(), opts: opts}
	err := v.run(ctx)
	v.r.finish(err)
	if err != nil && !errors.Is(err, ErrInvalid) {
		return nil, err // malformed, or the context ended
	}
	if err != nil || opts.Witnesses == nil {
		return v.r, err
	}
	return witnessCheck(b, key, v.r, opts.Witnesses)
}

// proven is one verified entry of a bundle.
type proven struct {
	index uint64
	data  []byte
	leaf  []byte
	e     *pb.Entry
}

type evidence struct {
	b   *pb.EvidenceBundle
	key *Key
	r   *EvidenceReport

	cp       *Checkpoint
	decision *proven
	chain    []*proven
	policy   *proven
	lastSend *proven // bundle field 6, if present
	grantAt  int     // the grant's position on the chain
	opts     Options
	notice   *proven // bundle field 5, if present
	d        *pb.SendDecision
	channel  pb.Channel
	purpose  string // the consent purpose
}

func (v *evidence) run(ctx context.Context) error {
	// Check 1: the checkpoint, against the pinned key only.
	cp, err := VerifyCheckpoint([]byte(v.b.Checkpoint), v.key)
	if err != nil {
		ce := failf(CheckSignature, "", "", "%s", strings.TrimPrefix(err.Error(), "checkpoint: "))
		ce.Err = err
		return ce
	}
	v.cp = cp
	v.r.Checkpoint = cp
	v.r.pass(CheckSignature, "The checkpoint of size %d (root %s) carries a valid signature by the pinned key %s+%s.", cp.Size, shortHex(cp.Root), cp.KeyName, cp.KeyHash)

	// Check 2: every entry, as stored bytes, is in that tree.
	if v.decision, err = v.include(v.b.Decision); err != nil {
		return err
	}
	for _, pe := range v.b.Chain {
		p, err := v.include(pe)
		if err != nil {
			return err
		}
		v.chain = append(v.chain, p)
	}
	if v.policy, err = v.include(v.b.Policy); err != nil {
		return err
	}
	if v.b.LastAllowedSend != nil {
		if v.lastSend, err = v.include(v.b.LastAllowedSend); err != nil {
			return err
		}
	}
	if err := v.includeNotice(); err != nil {
		return err
	}
	for _, p := range v.all() {
		v.r.Entries = append(v.r.Entries, p.index)
	}
	slices.Sort(v.r.Entries)
	idx := make([]string, len(v.r.Entries))
	for i, n := range v.r.Entries {
		idx[i] = fmt.Sprintf("#%d", n)
	}
	noun, verb := countEntries(len(idx))
	v.r.pass(CheckInclusion, "%s (%s) %s included in that checkpoint as stored, each at the index its own index field names.", capitalize(noun), strings.Join(idx, ", "), verb)

	v.d = v.decision.e.GetSendDecision()
	if v.d == nil || v.d.Request == nil {
		return malformedf("the bundle's decision, entry #%d, is a %s, not a send decision with a request", v.decision.index, eventKind(v.decision.e))
	}
	v.channel, v.purpose = v.d.Request.Channel, consentPurpose(v.d.Request)
	v.r.Decision = decisionFacts(v.decision, v.d)
	for _, p := range v.chain {
		v.r.Chain = append(v.r.Chain, chainEvent(p))
	}
	if pp := v.policy.e.GetPolicyPublished(); pp != nil {
		v.r.Policy = policyFacts(v.policy, pp)
	}

	switch {
	case !v.d.Allow:
		v.r.Outcome = OutcomeDenial
		if len(v.d.ConsentIndexes) > 0 {
			return failAt(CheckChain, v.decision.index, fmt.Sprintf("%d chain events, %d consent entries", len(v.chain), len(v.d.ConsentIndexes)), "none",
				"the decision is a denial, which relies on no consent, yet the bundle claims a consent chain")
		}
		if len(v.chain) > 0 {
			if err := v.checkStateChain("the decision is a denial, which relies on no consent, and names no consent head"); err != nil {
				return err
			}
		} else {
			v.r.skip(CheckChain, "Not applicable: the decision is a denial and relies on no consent.")
		}
		v.r.skip(CheckGrant, "Not applicable: the decision is a denial and relies on no consent.")
	case len(v.d.ConsentIndexes) == 0:
		if len(v.chain) > 0 {
			if err := v.checkStateChain("the decision relied on no consent entry, yet names no consent head"); err != nil {
				return err
			}
		} else {
			v.r.skip(CheckChain, "No consent chain: the decision relied on no consent entry.")
		}
		return failAt(CheckGrant, v.decision.index, "no consent entry", fmt.Sprintf("an opt-in for %s/%s", channelName(v.channel), v.purpose),
			"send decision #%d is authentic but NOT a proof of consent: it was allowed without relying on any opt-in for %s/%s (the policy's grounds: %s)",
			v.decision.index, channelName(v.channel), v.purpose, strings.Join(v.d.Reasons, "; "))
	default:
		if err := v.checkChain(); err != nil {
			return err
		}
		if err := v.checkGrant(); err != nil {
			return err
		}
		if err := v.checkGrantNotice(); err != nil {
			return err
		}
		v.r.Outcome = OutcomeConsent
	}
	if err := v.checkPolicy(ctx); err != nil {
		return err
	}
	return v.checkInput()
}

// all returns the bundle's entries in the order they are checked.
func (v *evidence) all() []*proven {
	out := append([]*proven{v.decision}, v.chain...)
	out = append(out, v.policy)
	if v.lastSend != nil {
		out = append(out, v.lastSend)
	}
	if v.notice != nil {
		out = append(out, v.notice)
	}
	return out
}

// include runs check 2 on one proven entry.
func (v *evidence) include(pe *pb.ProvenEntry) (*proven, error) {
	if err := VerifyInclusion(v.cp, pe.Index, pe.Entry, pe.InclusionProof); err != nil {
		pe2 := err.(*ProofError)
		ce := failAt(CheckInclusion, pe.Index, pe2.Got, pe2.Want, "%s", pe2.Reason)
		ce.Err = err
		return nil, ce
	}
	e, err := decodeEntry(pe.Entry)
	if err != nil {
		return nil, failAt(CheckInclusion, pe.Index, "", "", "the included bytes are not an entry: %v", err)
	}
	if e.Index != pe.Index {
		return nil, failAt(CheckInclusion, pe.Index, fmt.Sprintf("index field %d", e.Index), fmt.Sprintf("index field %d", pe.Index),
			"the entry is proven at index %d but its own index field says %d", pe.Index, e.Index)
	}
	return &proven{index: pe.Index, data: pe.Entry, leaf: LeafHash(pe.Entry), e: e}, nil
}

// checkGrant runs check 4.
func (v *evidence) checkGrant() error {
	de, gp := v.decision, v.chain[v.grantAt]
	g := gp.e.GetConsentGranted()
	ch, p := channelName(v.channel), v.purpose
	if g == nil {
		return failAt(CheckGrant, gp.index, eventKind(gp.e), "consent_granted", "the consent the decision relied on, entry #%d, is not an opt-in", gp.index)
	}
	if g.Channel != v.channel {
		return failAt(CheckGrant, gp.index, channelName(g.Channel), ch, "the opt-in is for another channel than the send")
	}
	if !slices.Contains(g.Purposes, p) {
		return failAt(CheckGrant, gp.index, strings.Join(g.Purposes, ","), p, "the opt-in does not cover the purpose %q the send relies on", p)
	}
	if gp.index >= de.index || timeOf(gp.e.RecordedAt).After(timeOf(de.e.RecordedAt)) {
		return failAt(CheckGrant, gp.index, fmt.Sprintf("#%d at %s", gp.index, fmtTime(gp.e.RecordedAt)), fmt.Sprintf("before #%d at %s", de.index, fmtTime(de.e.RecordedAt)),
			"the opt-in was recorded after the decision")
	}
	var confirmation *proven
	if !g.DoubleOptInConfirmed {
		for _, c := range v.chain[v.grantAt+1:] {
			if confirms(c.e, v.channel, p) {
				confirmation = c
				break
			}
		}
	}
	confirmed := g.DoubleOptInConfirmed || confirmation != nil
	demanded := slices.ContainsFunc(v.d.Reasons, func(r string) bool { return strings.HasPrefix(r, "double_opt_in:") })
	in := recordedConsent(v.d.Input, ch, p)
	if (demanded || in.DoubleOptIn) && !confirmed {
		return failAt(CheckGrant, gp.index, "no confirmation on the chain", "a double opt-in confirmation for "+ch+"/"+p,
			"the decision relied on a double opt-in, but the grant was not confirmed and no confirmation is on the chain")
	}
	// The recorded input must describe the consent the chain shows.
	if in.present {
		switch {
		case in.Status != "granted":
			return failAt(CheckGrant, de.index, fmt.Sprintf("status %q", in.Status), `status "granted"`, "the decision's recorded policy input does not show the consent the chain proves")
		case in.GrantIndex != nil && *in.GrantIndex != gp.index:
			return failAt(CheckGrant, de.index, fmt.Sprintf("grant #%d", *in.GrantIndex), fmt.Sprintf("grant #%d", gp.index), "the decision's recorded policy input names another grant than the chain")
		}
	}
	gf := &GrantFacts{
		Index: gp.index, RecordedAt: timeOf(gp.e.RecordedAt), Channel: ch, Purposes: g.Purposes, Method: g.Method,
		NoticeVersion: g.NoticeVersion, DoubleOptIn: confirmed, DoubleOptInDemanded: demanded || in.DoubleOptIn,
	}
	if g.OccurredAt != nil {
		t := g.OccurredAt.AsTime().UTC()
		gf.OccurredAt = &t
	}
	doi := "no double opt-in was needed"
	switch {
	case g.DoubleOptInConfirmed:
		t := timeOf(g.OccurredAt)
		if g.OccurredAt == nil {
			t = timeOf(gp.e.RecordedAt)
		}
		t = t.UTC()
		gf.ConfirmedAt, gf.ConfirmedBy = &t, &gp.index
		doi = "the opt-in itself records the double opt-in confirmation"
	case confirmation != nil:
		c := confirmation.e.GetConsentConfirmed()
		t := timeOf(c.OccurredAt)
		if c.OccurredAt == nil {
			t = timeOf(confirmation.e.RecordedAt)
		}
		t = t.UTC()
		gf.ConfirmedAt, gf.ConfirmedBy = &t, &confirmation.index
		doi = fmt.Sprintf("double opt-in confirmed by entry #%d on %s", confirmation.index, fmtGoTime(t))
	case !gf.DoubleOptInDemanded:
		doi = "no double opt-in was relied on"
	}
	v.r.Grant = gf
	v.r.pass(CheckGrant, "Entry #%d is an opt-in for %s/%s recorded %s, before the decision #%d (%s); %s.",
		gp.index, ch, p, fmtTime(gp.e.RecordedAt), de.index, fmtTime(de.e.RecordedAt), doi)
	return nil
}

// inputConsent is the consent record in a decision's recorded policy input
// (policies/README.md): input.subject.consents[channel][purpose].
type inputConsent struct {
	present     bool
	Status      string  `json:"status"`
	DoubleOptIn bool    `json:"double_opt_in"`
	GrantIndex  *uint64 `json:"grant_index"`
}

func recordedConsent(input []byte, channel, purpose string) inputConsent {
	var in struct {
		Subject struct {
			Consents map[string]map[string]json.RawMessage `json:"consents"`
		} `json:"subject"`
	}
	var c inputConsent
	if json.Unmarshal(input, &in) != nil {
		return c
	}
	raw, ok := in.Subject.Consents[channel][purpose]
	if !ok || json.Unmarshal(raw, &c) != nil {
		return inputConsent{}
	}
	c.present = true
	return c
}

// checkPolicy runs check 5.
func (v *evidence) checkPolicy(ctx context.Context) error {
	pol, de := v.policy, v.decision
	pp := pol.e.GetPolicyPublished()
	if pp == nil {
		return failAt(CheckPolicy, pol.index, eventKind(pol.e), "policy_published", "the bundle's policy, entry #%d, does not publish a policy", pol.index)
	}
	if pol.index != v.d.PolicyIndex {
		return failAt(CheckPolicy, pol.index, fmt.Sprintf("#%d", pol.index), fmt.Sprintf("#%d", v.d.PolicyIndex),
			"the bundle's policy entry is not the one the decision names")
	}
	if pp.Digest != v.d.PolicyDigest {
		return failAt(CheckPolicy, pol.index, pp.Digest, v.d.PolicyDigest, "the policy entry's digest is not the one the decision names")
	}
	files := policyFiles(pp)
	if got := policies.Digest(files); got != pp.Digest {
		return failAt(CheckPolicy, pol.index, got, pp.Digest, "the digest recomputed over the policy's %d files is not the recorded one", len(files))
	}
	if pol.index >= de.index {
		return failAt(CheckPolicy, pol.index, fmt.Sprintf("#%d", pol.index), fmt.Sprintf("before #%d", de.index), "the policy was published after the decision")
	}
	limit := v.opts.replayTimeout()
	rctx, cancel := context.WithTimeout(ctx, limit)
	dec, err := policies.Replay(rctx, files, v.d.Input)
	timedOut := rctx.Err() != nil
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if timedOut {
			return failAt(CheckPolicy, de.index, "", "", "replaying the decision's recorded input with policy #%d did not finish within %s (--replay-timeout): the policy does not terminate on it", pol.index, limit)
		}
		return failAt(CheckPolicy, de.index, "", "", "replaying the decision's recorded input with policy #%d fails: %v", pol.index, err)
	}
	if dec.Allow != v.d.Allow || !slices.Equal(dec.Reasons, v.d.Reasons) {
		return failAt(CheckPolicy, de.index, formatResult(dec.Allow, dec.Reasons), formatResult(v.d.Allow, v.d.Reasons),
			"replaying the decision's recorded input with policy #%d gives another result than the recorded one", pol.index)
	}
	verb := "allow"
	if !v.d.Allow {
		verb = "deny"
	}
	same := "the same reason"
	if len(dec.Reasons) != 1 {
		same = fmt.Sprintf("the same %d reasons", len(dec.Reasons))
	}
	v.r.pass(CheckPolicy, "Entry #%d publishes policy %s (%d files): the digest the decision names and the one recomputed from its files. Replaying the decision's recorded input with it gives the recorded result: %s, with %s.",
		pol.index, pp.Digest, len(files), verb, same)
	return nil
}

func policyFiles(pp *pb.PolicyPublished) []policies.File {
	files := make([]policies.File, len(pp.Files))
	for i, f := range pp.Files {
		files[i] = policies.File{Name: f.GetName(), Content: f.GetContent()}
	}
	return files
}

// formatResult writes a decision as `allow ["r1", "r2"]`.
func formatResult(allow bool, reasons []string) string {
	verb := "deny"
	if allow {
		verb = "allow"
	}
	q := make([]string, len(reasons))
	for i, r := range reasons {
		q[i] = fmt.Sprintf("%q", r)
	}
	return verb + " [" + strings.Join(q, ", ") + "]"
}
