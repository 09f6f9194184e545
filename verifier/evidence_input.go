package verifier

import (
	"fmt"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// checkInput runs check 6: the decision's recorded input agrees with what
// the bundle itself shows. It derives the input with the server's own
// derivation (package ledger/state) from the decision's request, the
// subject's consent events on the chain and the last allowed send, and
// compares it with the recorded one; what the bundle cannot show (open
// breaches, and in older bundles the consent state or the last send) is
// taken from the recorded input and listed in the report's NotProven.
func (v *evidence) checkInput() error {
	de, d := v.decision, v.d
	if !state.KnownInputVersion(d.InputVersion) {
		return failAt(CheckInput, de.index, fmt.Sprint(d.InputVersion), fmt.Sprint(state.InputVersion),
			"the decision names an input derivation this verifier does not know: use a newer consentverify")
	}
	now, err := recordedNow(d.Input)
	if err != nil {
		return failAt(CheckInput, de.index, "", "", "the recorded input cannot be checked: %v", err)
	}
	if got, want, problem := nowProblem(now, timeOf(de.e.RecordedAt)); problem != "" {
		return failAt(CheckInput, de.index, got, want, "%s", problem)
	}

	// The subject's consent state: none without a head; derived from the
	// chain when it starts at the subject's first consent event.
	var st *pb.SubjectState
	var notShown []string
	stateShown := true
	switch {
	case de.e.ConsentHeadIndex == nil:
	case len(v.chain) > 0 && v.chain[0].e.SubjectPrevIndex == nil && len(v.chain[0].e.SubjectPrevHash) == 0:
		for _, p := range v.chain {
			st = state.ApplyConsent(st, p.e, &pb.EntryRef{Index: p.index, LeafHash: p.leaf, RecordedAt: p.e.RecordedAt})
		}
	default:
		stateShown = false
		notShown = append(notShown, "Not shown: the subject's consent state on channels and purposes other than the one relied on — the bundle's chain does not start at the subject's first consent event (a bundle written before check 6 existed).")
	}

	// The last allowed send (bundle field 6).
	lastShown := false
	if ls := v.lastSend; ls != nil {
		lsd := ls.e.GetSendDecision()
		if lsd == nil || !lsd.Allow || ls.e.SubjectId != de.e.SubjectId || ls.index >= de.index ||
			lsd.GetRequest().GetChannel() != v.channel || lsd.GetRequest().GetPurpose() != v.purpose {
			return failAt(CheckInput, ls.index, describeLastSend(ls), fmt.Sprintf("an allowed send to the subject on %s/%s before #%d", channelName(v.channel), v.purpose, de.index),
				"the bundle's last allowed send, entry #%d, is not an earlier allowed send to the same subject on the same channel and purpose", ls.index)
		}
		if cs := state.FindConsent(st, v.channel, v.purpose); cs != nil {
			cs.LastAllowedSend, cs.LastAllowedSendAt = &pb.EntryRef{Index: ls.index, LeafHash: ls.leaf, RecordedAt: ls.e.RecordedAt}, ls.e.RecordedAt
		}
		lastShown = true
	}

	derivedDoc := policies.AppendJSON(nil, state.InputOf(d.InputVersion, now, d.Request, st != nil && !st.Erased, st, nil).Value())
	rec, err1 := decodeJSON(d.Input)
	der, err2 := decodeJSON(derivedDoc)
	recMap, ok1 := rec.(map[string]any)
	derMap, ok2 := der.(map[string]any)
	if err1 != nil || err2 != nil || !ok1 || !ok2 {
		return failAt(CheckInput, de.index, "", "", "the recorded input is not a JSON object")
	}
	// What the bundle cannot show comes from the recorded input.
	if rb, ok := recMap["breaches"]; ok {
		derMap["breaches"] = rb
	} else {
		delete(derMap, "breaches")
	}
	recSubj, _ := recMap["subject"].(map[string]any)
	derSubj, _ := derMap["subject"].(map[string]any)
	if recSubj != nil && derSubj != nil {
		if !stateShown {
			derSubj["consents"], derSubj["known"] = recSubj["consents"], recSubj["known"]
		}
		if de.e.ConsentHeadIndex == nil {
			// Known without consent events: the subject had earlier decisions,
			// which the bundle does not carry.
			derSubj["known"] = recSubj["known"]
			if recSubj["known"] == true {
				notShown = append(notShown, "Not shown: that the subject had earlier send decisions (the input says the subject was known, without consent events).")
			}
		}
		recCons, _ := recSubj["consents"].(map[string]any)
		derCons, _ := derSubj["consents"].(map[string]any)
		for ch, purposes := range derCons {
			pm, _ := purposes.(map[string]any)
			for p, c := range pm {
				if lastShown && ch == channelName(v.channel) && p == v.purpose {
					continue
				}
				dc, _ := c.(map[string]any)
				rc, _ := lookup(recCons, ch, p).(map[string]any)
				if dc == nil {
					continue
				}
				if rv, ok := rc["last_allowed_send_at"]; ok {
					dc["last_allowed_send_at"] = rv
					if ch == channelName(v.channel) && p == v.purpose {
						notShown = append(notShown, fmt.Sprintf("Not shown: the last allowed send the input names for %s/%s (%v) — the bundle carries no last_allowed_send entry (a bundle written before check 6 existed).", ch, p, rv))
					}
				} else {
					delete(dc, "last_allowed_send_at")
				}
			}
		}
	}
	if path, got, want, differ := diffJSON("", recMap, derMap); differ {
		return failAt(CheckInput, de.index, got, want,
			"the decision's recorded input says something the bundle contradicts: %s is not what the decision's request and the subject's consent events show", orRoot(path))
	}

	v.r.NotProven = append(notShown,
		"Open breaches: the input lists "+breachCount(recMap["breaches"])+"; that no other breach was open is proven only by the audit of the whole log (consentverify audit).",
		fmt.Sprintf("The policy in force: that no policy newer than #%d had been published before the decision — the audit proves it.", d.PolicyIndex),
		headFact(de.e.ConsentHeadIndex))
	if lastShown {
		v.r.NotProven = append(v.r.NotProven, fmt.Sprintf("That entry #%d was the subject's latest allowed send before the decision — the audit proves it.", v.lastSend.index))
	}
	if c := d.GetRequest().GetSubjectCountry(); c != "" {
		v.r.NotProven = append(v.r.NotProven, fmt.Sprintf("The subject's country (%s): it comes from the phone number, which the log never holds — only `consentledger subject reveal` with the subject commitment shows it.", c))
	}
	what := "its request is the decision's"
	switch {
	case de.e.ConsentHeadIndex == nil:
		what += ", and it shows no consent, as the subject had no consent event"
	case stateShown:
		what += fmt.Sprintf(", and its consent state is the one derived from the subject's %d consent events on the chain", len(v.chain))
	}
	if lastShown {
		what += fmt.Sprintf("; its last allowed send is entry #%d", v.lastSend.index)
	}
	v.r.pass(CheckInput, "The recorded input agrees with what the bundle shows: its now (%s) is at most %s before the decision's recorded_at and not after it; %s. What the bundle cannot prove alone is listed below.",
		fmtGoTime(now), state.MaxInputLag, what)
	return nil
}

func lookup(m map[string]any, ch, p string) any {
	pm, _ := m[ch].(map[string]any)
	return pm[p]
}

func breachCount(v any) string {
	a, _ := v.([]any)
	if len(a) == 1 {
		return "1 open breach"
	}
	return fmt.Sprintf("%d open breaches", len(a))
}

func describeLastSend(p *proven) string {
	d := p.e.GetSendDecision()
	if d == nil {
		return "a " + eventKind(p.e)
	}
	verdict := "denied"
	if d.Allow {
		verdict = "allowed"
	}
	return fmt.Sprintf("#%d, %s %s/%s", p.index, verdict, channelName(d.GetRequest().GetChannel()), d.GetRequest().GetPurpose())
}

func headFact(head *uint64) string {
	if head == nil {
		return "That the subject had no consent event before the decision (none hidden) — the audit proves it."
	}
	return fmt.Sprintf("That the consent head #%d the decision names was the subject's latest consent event (no later event hidden before the decision) — the audit proves it.", *head)
}
