package verifier

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
)

// checkChain runs check 3 for an allowed decision that relied on consent.
// The chain starts at the grant, or (bundles written since check 6) at the
// subject's first consent event before it.
func (v *evidence) checkChain() error {
	de, grant := v.decision, v.d.ConsentIndexes[0]
	if len(v.chain) == 0 {
		return failAt(CheckChain, de.index, "no chain", fmt.Sprintf("a chain from grant #%d", grant),
			"the decision relied on grant #%d but the bundle carries no consent chain", grant)
	}
	first := v.chain[0]
	gi := slices.IndexFunc(v.chain, func(p *proven) bool { return p.index == grant })
	if gi < 0 || (gi > 0 && (first.e.SubjectPrevIndex != nil || len(first.e.SubjectPrevHash) > 0)) {
		return failAt(CheckChain, first.index, fmt.Sprintf("#%d", first.index), fmt.Sprintf("#%d", grant),
			"the chain starts at entry #%d, not at the grant #%d the decision relied on (nor at the subject's first consent event before it)", first.index, grant)
	}
	v.grantAt = gi
	last, err := v.checkLinks(gi)
	if err != nil {
		return err
	}
	for _, ci := range v.d.ConsentIndexes {
		if !slices.ContainsFunc(v.chain, func(p *proven) bool { return p.index == ci }) {
			return failAt(CheckChain, de.index, "not in the chain", fmt.Sprintf("#%d", ci),
				"the decision relied on consent entry #%d, which is not on the chain", ci)
		}
	}
	var steps []string
	for _, p := range v.chain {
		steps = append(steps, fmt.Sprintf("#%d", p.index))
	}
	v.r.pass(CheckChain, "The subject's consent chain %s is unbroken (each event names the one before by index and leaf hash) and ends at the consent head #%d the decision names; no event after the grant #%d withdraws %s/%s.",
		strings.Join(steps, " → "), last.index, grant, channelName(v.channel), v.purpose)
	return nil
}

// checkLinks checks that the chain is the decision's subject's consent
// events, each naming the one before, ending at the consent head the
// decision names, before it; and, if from >= 0, that no event after
// chain[from] withdraws the decision's channel and purpose. It returns the
// chain's last event.
func (v *evidence) checkLinks(from int) (*proven, error) {
	de := v.decision
	if de.e.SubjectId == "" {
		return nil, failAt(CheckChain, de.index, "no subject", "a subject_id", "the decision names no subject")
	}
	for i, p := range v.chain {
		e := p.e
		if !isConsentEvent(e) {
			return nil, failAt(CheckChain, p.index, eventKind(e), "a consent event", "entry #%d on the consent chain is a %s, not a consent event", p.index, eventKind(e))
		}
		if e.SubjectId != de.e.SubjectId {
			return nil, failAt(CheckChain, p.index, e.SubjectId, de.e.SubjectId, "entry #%d is about another subject than the decision", p.index)
		}
		if i > 0 {
			prev := v.chain[i-1]
			if e.SubjectPrevIndex == nil || *e.SubjectPrevIndex != prev.index || p.index <= prev.index {
				got := "no previous event"
				if e.SubjectPrevIndex != nil {
					got = fmt.Sprintf("#%d", *e.SubjectPrevIndex)
				}
				return nil, failAt(CheckChain, p.index, got, fmt.Sprintf("#%d", prev.index),
					"entry #%d does not name #%d as the subject's previous consent event: the chain is broken, an event between them is missing", p.index, prev.index)
			}
			if !bytes.Equal(e.SubjectPrevHash, prev.leaf) {
				return nil, failAt(CheckChain, p.index, hex.EncodeToString(e.SubjectPrevHash), hex.EncodeToString(prev.leaf),
					"entry #%d names #%d as the previous consent event, but with another leaf hash", p.index, prev.index)
			}
		}
		if from >= 0 && i > from && withdraws(e, v.channel, v.purpose) {
			return nil, failAt(CheckChain, p.index, describeEvent(e), "no withdrawal",
				"entry #%d (%s) ends the consent for %s/%s before the decision", p.index, describeEvent(e), channelName(v.channel), v.purpose)
		}
	}
	last := v.chain[len(v.chain)-1]
	if de.e.ConsentHeadIndex == nil {
		return nil, failAt(CheckChain, de.index, "no consent head", fmt.Sprintf("#%d", last.index), "the decision names no consent head, yet relies on consent")
	}
	if head := *de.e.ConsentHeadIndex; head != last.index {
		return nil, failAt(CheckChain, de.index, fmt.Sprintf("chain ends at #%d", last.index), fmt.Sprintf("consent head #%d", head),
			"the chain does not end at the consent head the decision names: consent events are missing from the bundle")
	}
	if !bytes.Equal(de.e.ConsentHeadHash, last.leaf) {
		return nil, failAt(CheckChain, de.index, hex.EncodeToString(last.leaf), hex.EncodeToString(de.e.ConsentHeadHash),
			"the decision names its consent head #%d with another leaf hash", last.index)
	}
	if last.index >= de.index {
		return nil, failAt(CheckChain, de.index, fmt.Sprintf("#%d", last.index), fmt.Sprintf("before #%d", de.index), "the consent head comes after the decision")
	}
	return last, nil
}

// checkStateChain runs check 3 for a decision that relied on no consent
// but whose bundle carries the subject's consent events for check 6.
func (v *evidence) checkStateChain(what string) error {
	de := v.decision
	if de.e.ConsentHeadIndex == nil {
		return failAt(CheckChain, de.index, fmt.Sprintf("%d chain events", len(v.chain)), "none",
			"%s, yet the bundle carries a consent chain", what)
	}
	last, err := v.checkLinks(-1)
	if err != nil {
		return err
	}
	v.r.pass(CheckChain, "The subject's consent chain from entry #%d to the consent head #%d the decision names is unbroken; the decision relied on no consent, so the chain serves check 6 only.",
		v.chain[0].index, last.index)
	return nil
}
