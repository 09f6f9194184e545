package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// frank is the subject of the soundness scenario's RCS opt-out case.
const frank = "+49 160 9876543"

// loopRego is a policy whose evaluation never ends in practice (10^12
// iterations without allocating).
const loopRego = `package consentledger.send

decision := {"allow": true, "reasons": ["consent: never"]} if {
	some a in numbers.range(1, 1000000)
	some b in numbers.range(1, 1000000)
	a + b < 0
} else := {"allow": false, "reasons": ["no_consent: none"]}
`

// runSoundness writes testdata/soundness: a log recorded by today's server
// (bundles carry the subject's whole consent chain and the last allowed
// send), and one forgery per class of lie about a decision's input, each
// made with the log's own signing key so that only the derivation of
// inputs from the log (audit) or check 6 (evidence) can catch it.
func runSoundness(ctx context.Context, out string) error {
	a, err := start(ctx, origin, day("2026-01-05 09:00"))
	if err != nil {
		return err
	}
	defer a.stop()
	ix, _, err := scenario(ctx, a)
	if err != nil {
		return err
	}
	if err := frankScenario(ctx, a, ix); err != nil {
		return err
	}
	w := &writer{dir: out}
	w.mkdirs("soundness")
	vkey, err := ledger.ReadVerifierKey(a.dataDir)
	if err != nil {
		return err
	}
	w.file("soundness/verifier.key", []byte(vkey+"\n"))
	var exp bytes.Buffer
	if _, err := a.c.Export(ctx, &exp, nil); err != nil {
		return err
	}
	w.file("soundness/log.export", exp.Bytes())
	raw, err := a.c.Evidence(ctx, ix["anna_allow_wa_later"])
	if err != nil {
		return err
	}
	w.file("soundness/valid-allow-later.json", raw) // the chain from Anna's first event, and her last send #11

	signer, err := readSigner(a.dataDir)
	if err != nil {
		return err
	}
	entries, err := readEntries(ctx, a)
	if err != nil {
		return err
	}
	f := &soundForger{entries: entries}
	later, deny := ix["anna_allow_wa_later"], ix["anna_deny_breach"]
	annaWA := []uint64{ix["anna_grant_wa"], ix["anna_confirm_wa"]}
	quiet := ts(day("2026-12-08 22:30")) // 23:30 in Berlin
	type forgery struct {
		name   string
		target uint64
		change func(e *pb.Entry, in map[string]any) // edits the decision and its input
		relied []uint64                             // the consent entries the lie relies on
	}
	forgeries := []forgery{
		{"breach-freeze-hidden", deny, func(e *pb.Entry, in map[string]any) {
			in["breaches"] = []any{}
		}, annaWA},
		{"quiet-hours-now", later, func(e *pb.Entry, in map[string]any) {
			e.RecordedAt = quiet // the send happened at 23:30; the input still says 10:00
		}, annaWA},
		{"quiet-hours-zone", later, func(e *pb.Entry, in map[string]any) {
			e.RecordedAt = quiet
			in["now"] = "2026-12-08T22:30:00Z"
			in["request"].(map[string]any)["subject_timezone"] = "America/Los_Angeles" // the request still says Berlin
		}, annaWA},
		{"rcs-optout-omitted", ix["frank_rcs_marketing"], func(e *pb.Entry, in map[string]any) {
			delete(in["subject"].(map[string]any)["consents"].(map[string]any), "sms")
		}, []uint64{ix["frank_grant_rcs"]}},
		{"superseded-policy", later, func(e *pb.Entry, in map[string]any) {
			d := e.GetSendDecision()
			d.PolicyIndex = ix["policy_allow_all"]
			d.PolicyDigest = decode(entries[d.PolicyIndex]).GetPolicyPublished().GetDigest()
		}, annaWA},
		{"withdrawn-consent-claimed", ix["ben_deny_sms"], func(e *pb.Entry, in map[string]any) {
			c := in["subject"].(map[string]any)["consents"].(map[string]any)["sms"].(map[string]any)["marketing"].(map[string]any)
			c["status"] = "granted"
			delete(c, "withdrawn_at")
			delete(c, "withdrawal_index")
		}, []uint64{ix["ben_grant_sms"]}},
		{"allow-without-consent-event", ix["chloe_deny_wa"], func(e *pb.Entry, in map[string]any) {
			in["subject"].(map[string]any)["known"] = true
			in["subject"].(map[string]any)["consents"] = map[string]any{"whatsapp": map[string]any{"marketing": map[string]any{
				"status": "granted", "granted_at": "2026-01-05T09:04:00Z", "method": "checkout", "notice_version": "2026-01",
				"double_opt_in": true, "confirmed_at": "2026-01-05T09:04:00Z",
			}}}
		}, nil},
		{"rcs-relying-on-sms-grant", ix["anna_allow_sms"], func(e *pb.Entry, in map[string]any) {
			e.GetSendDecision().Request.Channel = pb.Channel_CHANNEL_RCS
			in["request"].(map[string]any)["channel"] = "rcs"
			cs := in["subject"].(map[string]any)["consents"].(map[string]any)
			cs["rcs"] = cs["sms"]
		}, []uint64{ix["anna_grant_sms"]}},
	}
	for _, fg := range forgeries {
		var lie error
		fl := newForgedLog(entries, signer, func(i uint64, e *pb.Entry) bool {
			if i != fg.target {
				return false
			}
			lie = f.lie(ctx, e, fg.change, fg.relied)
			return true
		})
		if lie != nil {
			return fmt.Errorf("%s: %w", fg.name, lie)
		}
		eb, err := soundBundle(fl, fg.target)
		if err != nil {
			return fmt.Errorf("%s: %w", fg.name, err)
		}
		w.file("soundness/"+fg.name+".json", protoJSON(eb))
		w.file("soundness/"+fg.name+".export", fl.export())
	}

	// A policy that never ends: the allow-all policy's send rule replaced,
	// and the decision it made names the new digest.
	allowAllIx, noConsent := ix["policy_allow_all"], ix["chloe_allow_no_consent"]
	var loopDigest string
	loop := newForgedLog(entries, signer, func(i uint64, e *pb.Entry) bool {
		switch i {
		case allowAllIx:
			pp := e.GetPolicyPublished()
			var files []policies.File
			for _, pf := range pp.Files {
				if pf.Name == "allow.rego" {
					pf.Content = loopRego
				}
				if pf.Name == "allow_test.rego" {
					continue
				}
				files = append(files, policies.File{Name: pf.Name, Content: pf.Content})
			}
			var kept []*pb.PolicyFile
			for _, pf := range pp.Files {
				if pf.Name != "allow_test.rego" {
					kept = append(kept, pf)
				}
			}
			pp.Files = kept
			pp.Digest = policies.Digest(files)
			loopDigest = pp.Digest
			return true
		case noConsent:
			e.GetSendDecision().PolicyDigest = loopDigest
			return true
		}
		return false
	})
	w.file("soundness/never-ending-policy.export", loop.export())

	// Entries beyond the checkpoint: the honest export and one more record.
	beyond := bytes.Clone(exp.Bytes())
	last := entries[len(entries)-1]
	beyond = binary.AppendUvarint(beyond, uint64(len(last)))
	w.file("soundness/beyond-checkpoint.export", append(beyond, last...))

	if w.err != nil {
		return w.err
	}
	log.Printf("wrote %d files to %s/soundness (log of %d entries, key %s)", w.n, out, len(entries), vkey)
	return nil
}

// frankScenario adds Frank: RCS and SMS marketing opt-ins, an SMS STOP that
// optout_scope extends to RCS, and an RCS marketing send the policy denies.
func frankScenario(ctx context.Context, s *srv, ix indexes) error {
	rcs, sms := pb.Channel_CHANNEL_RCS, pb.Channel_CHANNEL_SMS
	for _, g := range []struct {
		name string
		ch   pb.Channel
		at   string
	}{{"frank_grant_rcs", rcs, "2026-12-09 09:00"}, {"frank_grant_sms", sms, "2026-12-09 09:10"}} {
		s.clock.Set(day(g.at))
		r, err := s.c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: phone(frank), Channel: g.ch, Purposes: []string{"marketing"}, Method: "web_form", NoticeVersion: "2026-01",
			EvidenceDigest: digest(g.name), OccurredAt: ts(day(g.at).Add(-time.Minute)), DoubleOptInConfirmed: true,
		}))
		if err != nil {
			return err
		}
		ix[g.name] = r.Msg.Entry.Index
	}
	s.clock.Set(day("2026-12-09 09:30"))
	inb, err := s.c.Consent.HandleInbound(ctx, connect.NewRequest(&pb.HandleInboundRequest{
		Subject: phone(frank), Channel: sms, Text: "STOP", ReceivedAt: ts(day("2026-12-09 09:29")),
	}))
	if err != nil {
		return err
	}
	if inb.Msg.Entry == nil {
		return fmt.Errorf("frank's STOP recorded nothing")
	}
	ix["frank_stop_sms"] = inb.Msg.Entry.Index
	s.clock.Set(day("2026-12-09 10:00"))
	r, err := s.c.Send.Decide(ctx, connect.NewRequest(&pb.DecideRequest{
		Subject: phone(frank), Channel: rcs, Purpose: "marketing", Category: "marketing",
		Provider: &pb.Provider{Name: euBSP, Region: "EU"}, SubjectTimezone: berlin, MessageRef: "rcs-promo-1",
	}))
	if err != nil {
		return err
	}
	if r.Msg.Allow {
		return fmt.Errorf("frank's RCS marketing send after his SMS STOP was allowed; optout_scope should deny it")
	}
	ix["frank_rcs_marketing"] = r.Msg.Decision.Index
	return nil
}

// soundForger turns recorded decisions into lies a key holder could sign.
type soundForger struct {
	entries [][]byte
}

// lie edits decision e and its recorded input with change, evaluates the
// edited input with the policy the decision names, and records the result,
// so that the replay agrees and only the derivation of the input can tell.
func (f *soundForger) lie(ctx context.Context, e *pb.Entry, change func(*pb.Entry, map[string]any), relied []uint64) error {
	d := e.GetSendDecision()
	var in map[string]any
	dec := json.NewDecoder(bytes.NewReader(d.Input))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil {
		return err
	}
	change(e, in)
	input, err := json.Marshal(in)
	if err != nil {
		return err
	}
	files := policyFilesOf(decode(f.entries[d.PolicyIndex]).GetPolicyPublished())
	res, err := policies.Replay(ctx, files, input)
	if err != nil {
		return err
	}
	if !res.Allow {
		return fmt.Errorf("the forged input is denied too (%v): no lie to tell", res.Reasons)
	}
	d.Input, d.Allow, d.Reasons, d.ConsentIndexes = input, res.Allow, res.Reasons, relied
	return nil
}

func policyFilesOf(pp *pb.PolicyPublished) []policies.File {
	files := make([]policies.File, len(pp.GetFiles()))
	for i, pf := range pp.GetFiles() {
		files[i] = policies.File{Name: pf.Name, Content: pf.Content}
	}
	return files
}

// soundBundle builds the bundle of a decision as today's rpc.Evidence does:
// the subject's consent events from the first, and the last allowed send
// the input names for the consent the request needs.
func soundBundle(f *forgedLog, index uint64) (*pb.EvidenceBundle, error) {
	e := decode(f.entries[index])
	d := e.GetSendDecision()
	if d == nil {
		return nil, fmt.Errorf("entry %d is not a decision", index)
	}
	b := &pb.EvidenceBundle{Checkpoint: string(f.cp), Decision: f.prove(index), Policy: f.prove(d.PolicyIndex)}
	if e.ConsentHeadIndex != nil {
		for at := *e.ConsentHeadIndex; ; {
			b.Chain = append([]*pb.ProvenEntry{f.prove(at)}, b.Chain...)
			ce := decode(f.entries[at])
			if ce.SubjectPrevIndex == nil {
				break
			}
			at = *ce.SubjectPrevIndex
		}
	}
	var in struct {
		Subject struct {
			Consents map[string]map[string]struct {
				LastAllowedSendAt string `json:"last_allowed_send_at"`
			} `json:"consents"`
		} `json:"subject"`
	}
	if json.Unmarshal(d.Input, &in) == nil {
		at := in.Subject.Consents[state.ChannelName(d.Request.GetChannel())][state.ConsentPurpose(d.Request)].LastAllowedSendAt
		for i := index; at != "" && i > 0; i-- {
			ce := decode(f.entries[i-1])
			cd := ce.GetSendDecision()
			if cd != nil && cd.Allow && ce.SubjectId == e.SubjectId && cd.GetRequest().GetChannel() == d.Request.GetChannel() &&
				cd.GetRequest().GetPurpose() == state.ConsentPurpose(d.Request) {
				b.LastAllowedSend = f.prove(i - 1)
				break
			}
		}
	}
	return b, nil
}
