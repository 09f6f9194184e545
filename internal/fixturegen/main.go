// Command fixturegen regenerates the verifier's fixtures in testdata/ at the
// repository root. It runs a real consentledger server in-process
// (server.Run, a temporary data directory, a fixed clock), records a
// scenario through the Connect API — opt-ins, a double opt-in confirmation,
// an SMS STOP, an erasure, allowed and denied decisions, an allow-all policy,
// three breaches — and fetches evidence bundles, checkpoints, a consistency
// proof and an export. It then writes tampered variants (edited bytes, no
// signature) and forged ones (re-signed with the log's own key, as a
// dishonest operator could), each meant to fail one check. Run it from the
// repository root:
//
//	go run ./internal/fixturegen            # writes ./testdata
//	go run ./internal/fixturegen -set soundness   # only testdata/soundness
//	go test ./verifier/ ./cmd/consentverify/ -update   # then refresh the golden reports
//
// With -set soundness it writes only testdata/soundness/: a log recorded by
// today's server, whose bundles carry the subject's whole consent chain and
// last allowed send, and one forgery per class of lie about a decision's
// policy input (a hidden breach freeze, a shifted now, a changed time zone,
// an omitted opt-out, a superseded policy, a withdrawn or missing consent,
// a grant of another channel), each re-evaluated and signed with the log's
// own key so that the replay agrees and only the derivation of the input
// (audit, evidence check 6) can catch it; a policy that never ends; an
// export with an entry beyond its checkpoint. It lives outside verifier/
// because it runs a real server: the verifier imports no server.
//
// The scenario and its clock are fixed; keys, subject ids and salts are
// random, so each run writes different bytes. Tests verify the committed
// fixtures and never run the generator. testdata/README.md lists every
// fixture and the check that must catch it.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

const (
	origin      = "consent.example.com/ledger"
	otherOrigin = "other.example.org/ledger"
	witnessName = "witness.example.net"
)

func main() {
	out := flag.String("out", "testdata", "directory to write the fixtures to")
	set := flag.String("set", "all", `which fixtures to write: "base" (evidence/, export/, consistency/), "soundness" (soundness/) or "all"`)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("fixturegen: ")
	ctx := context.Background()
	if *set == "base" || *set == "all" {
		if err := run(ctx, *out); err != nil {
			log.Fatal(err)
		}
	}
	if *set == "soundness" || *set == "all" {
		if err := runSoundness(ctx, *out); err != nil {
			log.Fatal(err)
		}
	}
}

// clock is the servers' settable clock.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time  { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time) { c.ns.Store(t.UnixNano()) }

type srv struct {
	c       *client.Client
	clock   *clock
	dataDir string
	stop    func() error
}

func start(ctx context.Context, origin string, t0 time.Time) (*srv, error) {
	dir, err := os.MkdirTemp("", "consentverify-gen-")
	if err != nil {
		return nil, err
	}
	ck := &clock{}
	ck.Set(t0)
	ctx, cancel := context.WithCancel(ctx)
	ready := make(chan string, 1)
	done := make(chan error, 1)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := server.Config{DataDir: dir, Addr: "127.0.0.1:0", Origin: origin, Now: ck.Now}
	go func() { done <- server.Run(ctx, cfg, quiet, func(addr string) { ready <- addr }) }()
	var addr string
	select {
	case addr = <-ready:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("server did not start: %v", err)
	case <-time.After(60 * time.Second):
		cancel()
		return nil, fmt.Errorf("server did not start in 60 s")
	}
	c, err := client.New("http://"+addr, client.Options{})
	if err != nil {
		cancel()
		return nil, err
	}
	return &srv{c: c, clock: ck, dataDir: dir, stop: func() error {
		cancel()
		err := <-done
		os.RemoveAll(dir)
		return err
	}}, nil
}

func phone(n string) *pb.Subject { return &pb.Subject{Id: &pb.Subject_Phone{Phone: n}} }
func ts(t time.Time) *timestamppb.Timestamp {
	return timestamppb.New(t)
}
func day(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04", s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

const (
	anna   = "+49 170 1234567"
	ben    = "+49 151 2345678"
	chloe  = "+33 6 12 34 56 78"
	dan    = "+49 160 9876543"
	eva    = "+49 171 5550000"
	euBSP  = "eu-bsp"
	berlin = "Europe/Berlin"
)

// indexes are the entries of the scenario, by name.
type indexes map[string]uint64

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// scenario records the fixed story and returns its entries by name.
func scenario(ctx context.Context, s *srv) (ix indexes, oldCP *pb.GetCheckpointResponse, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("scenario: %v", r)
		}
	}()
	ix = indexes{"policy_default": 0}
	at := func(t string) { s.clock.Set(day(t)) }
	optIn := func(name, who string, ch pb.Channel, purposes []string, method string, doi bool, occurred string) {
		r := must(s.c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: phone(who), Channel: ch, Purposes: purposes, Method: method, NoticeVersion: "2026-01",
			EvidenceDigest: digest(name), OccurredAt: ts(day(occurred)), DoubleOptInConfirmed: doi,
		})))
		ix[name] = r.Msg.Entry.Index
	}
	decide := func(name, who string, ch pb.Channel, purpose, category, zone, ref string) bool {
		r := must(s.c.Send.Decide(ctx, connect.NewRequest(&pb.DecideRequest{
			Subject: phone(who), Channel: ch, Purpose: purpose, Category: category,
			Provider: &pb.Provider{Name: euBSP, Region: "EU"}, SubjectTimezone: zone, MessageRef: ref,
		})))
		ix[name] = r.Msg.Decision.Index
		return r.Msg.Allow
	}
	wa, sms, rcs := pb.Channel_CHANNEL_WHATSAPP, pb.Channel_CHANNEL_SMS, pb.Channel_CHANNEL_RCS

	at("2026-01-05 09:05")
	optIn("anna_grant_wa", anna, wa, []string{"marketing"}, "checkout", false, "2026-01-05 09:04")
	at("2026-01-06 10:00")
	optIn("anna_grant_sms", anna, sms, []string{"order_updates"}, "web_form", false, "2026-01-06 09:58")
	at("2026-01-06 10:30")
	ix["anna_confirm_wa"] = must(s.c.Consent.ConfirmOptIn(ctx, connect.NewRequest(&pb.ConfirmOptInRequest{
		Subject: phone(anna), Channel: wa, Purposes: []string{"marketing"}, OccurredAt: ts(day("2026-01-06 10:29")),
	}))).Msg.Entry.Index
	at("2026-02-02 09:00")
	optIn("ben_grant_wa", ben, wa, []string{"marketing"}, "web_form", true, "2026-02-02 08:59")
	at("2026-02-03 09:00")
	optIn("ben_grant_sms", ben, sms, []string{"marketing"}, "paper", true, "2026-02-01 15:00")
	at("2026-03-10 18:00")
	inb := must(s.c.Consent.HandleInbound(ctx, connect.NewRequest(&pb.HandleInboundRequest{
		Subject: phone(ben), Channel: sms, Text: "Stopp", ReceivedAt: ts(day("2026-03-10 17:59")),
	})))
	if inb.Msg.Action != "opt_out" || inb.Msg.Entry == nil {
		return nil, nil, fmt.Errorf("inbound STOPP: action %q, want opt_out", inb.Msg.Action)
	}
	ix["ben_stop_sms"] = inb.Msg.Entry.Index
	at("2026-03-11 09:00")
	optIn("ben_grant_rcs", ben, rcs, []string{"order_updates"}, "profile", false, "2026-03-11 08:58")
	at("2026-05-04 10:00")
	optIn("dan_grant_wa", dan, wa, []string{"marketing"}, "checkout", true, "2026-05-04 09:59")
	at("2026-06-01 09:00")
	optIn("eva_grant_sms", eva, sms, []string{"marketing"}, "web_form", true, "2026-06-01 08:59")
	at("2026-06-15 09:00")
	ix["eva_erased"] = must(s.c.Consent.EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{
		Subject: phone(eva), Reason: "art17_request",
	}))).Msg.Entry.Index

	at("2026-11-25 11:59")
	oldCP = must(s.c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))).Msg

	// A Wednesday, 13:00 in Berlin: outside every quiet-hours window.
	at("2026-11-25 12:00")
	want := func(name string, allow, got bool) {
		if allow != got {
			panic(fmt.Sprintf("decision %s: allow=%v, want %v", name, got, allow))
		}
	}
	want("anna_allow_wa", true, decide("anna_allow_wa", anna, wa, "marketing", "marketing", berlin, "newsletter-48"))
	at("2026-11-25 12:01")
	want("chloe_deny_wa", false, decide("chloe_deny_wa", chloe, wa, "marketing", "marketing", "Europe/Paris", "newsletter-48"))
	at("2026-11-25 12:02")
	want("ben_allow_wa", true, decide("ben_allow_wa", ben, wa, "marketing", "marketing", berlin, "newsletter-48"))
	at("2026-11-25 12:03")
	want("dan_allow_template", true, decide("dan_allow_template", dan, wa, "order_updates", "marketing", berlin, "template-winter-sale"))
	at("2026-11-25 12:04")
	want("ben_deny_sms", false, decide("ben_deny_sms", ben, sms, "marketing", "", berlin, "sms-promo-7"))
	at("2026-11-25 12:05")
	want("anna_allow_sms", true, decide("anna_allow_sms", anna, sms, "order_updates", "utility", berlin, "order-4711-shipped"))

	at("2026-11-25 12:10")
	ix["policy_allow_all"] = must(s.c.Policy.PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{
		Files: allowAll(), Note: "test policy that allows every send (misconfiguration drill)",
	}))).Msg.Entry.Index
	at("2026-11-25 12:11")
	want("chloe_allow_no_consent", true, decide("chloe_allow_no_consent", chloe, wa, "marketing", "marketing", "Europe/Paris", "newsletter-48"))
	at("2026-11-25 12:12")
	var def []*pb.PolicyFile
	for _, f := range policies.Default() {
		def = append(def, &pb.PolicyFile{Name: f.Name, Content: f.Content})
	}
	ix["policy_default_again"] = must(s.c.Policy.PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{
		Files: def, Note: "back to the default policy",
	}))).Msg.Entry.Index

	// Breaches.
	at("2026-11-26 08:00")
	ix["breach1_detected"] = must(s.c.Breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		BreachId: "brc-2026-001", DetectedAt: ts(day("2026-11-26 07:30")),
		Description: "A misconfigured export bucket exposed WhatsApp opt-in records (phone numbers, consent dates) for about 14 hours.",
		BreachTypes: []string{"confidentiality"}, DataCategories: []string{"phone numbers", "consent records"},
		Channels: []pb.Channel{wa}, SubjectsEstimate: 1200, RecordsEstimate: 1450, Risk: "high",
		LikelyConsequences: "unsolicited contact, phishing", Measures: "bucket closed, keys rotated, access logs reviewed",
	}))).Msg.Entry.Index
	at("2026-11-26 12:00")
	want("anna_deny_breach", false, decide("anna_deny_breach", anna, wa, "marketing", "marketing", berlin, "newsletter-49"))
	at("2026-11-27 09:00")
	ix["breach1_authority"] = must(s.c.Breach.RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
		BreachId: "brc-2026-001", Authority: "BfDI", Reference: "BFDI-2026-0815", Phase: "preliminary", NotifiedAt: ts(day("2026-11-27 09:00")),
	}))).Msg.Entry.Index
	at("2026-11-28 10:00")
	ix["breach1_subjects"] = must(s.c.Breach.RecordSubjectNotification(ctx, connect.NewRequest(&pb.RecordSubjectNotificationRequest{
		BreachId: "brc-2026-001", NotifiedAt: ts(day("2026-11-28 10:00")), Method: "email", SubjectsNotified: 1180,
	}))).Msg.Entry.Index
	at("2026-11-30 16:00")
	ix["breach1_closed"] = must(s.c.Breach.CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{
		BreachId: "brc-2026-001", ClosedAt: ts(day("2026-11-30 16:00")), Summary: "bucket policy fixed; no misuse found",
	}))).Msg.Entry.Index
	at("2026-12-01 10:00")
	ix["breach2_detected"] = must(s.c.Breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		BreachId: "brc-2026-002", DetectedAt: ts(day("2026-12-01 09:00")),
		Description: "The SMS gateway's delivery reports were unavailable after a ransomware attack on the provider.",
		BreachTypes: []string{"availability"}, DataCategories: []string{"delivery reports"},
		Channels: []pb.Channel{sms}, SubjectsEstimate: 30000, Risk: "medium",
	}))).Msg.Entry.Index
	at("2026-12-04 17:00")
	ix["breach2_authority"] = must(s.c.Breach.RecordAuthorityNotification(ctx, connect.NewRequest(&pb.RecordAuthorityNotificationRequest{
		BreachId: "brc-2026-002", Authority: "BfDI", Reference: "BFDI-2026-0877", Phase: "preliminary", NotifiedAt: ts(day("2026-12-04 17:00")),
		DelayReason: "forensic analysis by an external firm was needed to establish whether personal data was affected",
	}))).Msg.Entry.Index
	at("2026-12-07 10:00")
	ix["breach3_detected"] = must(s.c.Breach.ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
		BreachId: "brc-2026-003", DetectedAt: ts(day("2026-12-07 09:30")),
		Description: "An e-mail newsletter went to the wrong segment; recipients saw each other's addresses in the To field.",
		BreachTypes: []string{"confidentiality"}, DataCategories: []string{"e-mail addresses"},
		Channels: []pb.Channel{pb.Channel_CHANNEL_EMAIL}, SubjectsEstimate: 40, Risk: "low",
	}))).Msg.Entry.Index
	at("2026-12-08 09:00")
	want("anna_allow_wa_later", true, decide("anna_allow_wa_later", anna, wa, "marketing", "marketing", berlin, "newsletter-50"))
	return ix, oldCP, nil
}

// digest is a stand-in for the caller's evidence digest (a form snapshot).
func digest(name string) []byte {
	d := sha256.Sum256([]byte("evidence of " + name))
	return d[:]
}

// allowAll is a policy set that allows every send: with PublishPolicy's
// strict compile and its own passing test.
func allowAll() []*pb.PolicyFile {
	return []*pb.PolicyFile{
		{Name: "allow.rego", Content: `# METADATA
# title: Allow every send (test policy)
package consentledger.send

decision := {"allow": true, "reasons": ["allow_all: this test policy allows every send"]}
`},
		{Name: "allow_test.rego", Content: `package consentledger.send_test

import data.consentledger.send

test_allows_everything if send.decision.allow
`},
		{Name: "inbound.rego", Content: `package consentledger.inbound

default action := "none"

default keyword := ""
`},
	}
}

func run(ctx context.Context, out string) error {
	a, err := start(ctx, origin, day("2026-01-05 09:00"))
	if err != nil {
		return err
	}
	defer a.stop()
	b, err := start(ctx, otherOrigin, day("2026-01-05 09:00"))
	if err != nil {
		return err
	}
	defer b.stop()

	ix, oldCP, err := scenario(ctx, a)
	if err != nil {
		return err
	}
	// The other log: one opt-in, so that its checkpoint is not empty.
	b.clock.Set(day("2026-11-25 12:00"))
	if _, err := b.c.Consent.RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
		Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, Method: "checkout", DoubleOptInConfirmed: true,
	})); err != nil {
		return err
	}
	otherCP, err := b.c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		return err
	}

	newCP, err := a.c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		return err
	}
	w := &writer{dir: out}
	w.mkdirs("evidence", "export", "consistency")
	vkeyA, err := ledger.ReadVerifierKey(a.dataDir)
	if err != nil {
		return err
	}
	vkeyB, err := ledger.ReadVerifierKey(b.dataDir)
	if err != nil {
		return err
	}
	w.file("verifier.key", []byte(vkeyA+"\n"))
	w.file("other-log.key", []byte(vkeyB+"\n"))

	// Honest bundles.
	bundles := map[string]*pb.EvidenceBundle{}
	for name, decision := range map[string]string{
		"valid-allow":           "anna_allow_wa",
		"valid-deny":            "chloe_deny_wa",
		"valid-allow-optout":    "ben_allow_wa",
		"valid-allow-template":  "dan_allow_template",
		"valid-allow-sms":       "anna_allow_sms",
		"valid-deny-breach":     "anna_deny_breach",
		"allow-without-consent": "chloe_allow_no_consent",
	} {
		raw, err := a.c.Evidence(ctx, ix[decision])
		if err != nil {
			return fmt.Errorf("evidence for %s: %w", decision, err)
		}
		eb := new(pb.EvidenceBundle)
		if err := protojson.Unmarshal(raw, eb); err != nil {
			return err
		}
		if eb.Checkpoint != newCP.Msg.Checkpoint {
			return fmt.Errorf("the bundle of %s is not in the final checkpoint", name)
		}
		bundles[name] = eb
		w.file("evidence/"+name+".json", raw) // exactly as the server wrote it
	}

	// Tampered: edited without the key.
	allow := bundles["valid-allow"]
	w.bundle("flipped-byte", edit(allow, func(eb *pb.EvidenceBundle) {
		d := eb.Decision.Entry
		i := bytes.Index(d, []byte("newsletter-48"))
		d[i+len("newsletter-")] ^= 0x01 // "newsletter-48" -> "newsletter-58": still decodes
	}))
	w.bundle("checkpoint-altered", edit(allow, func(eb *pb.EvidenceBundle) {
		lines := strings.SplitN(eb.Checkpoint, "\n", 3)
		lines[1] = fmt.Sprint(newCP.Msg.Size + 1)
		eb.Checkpoint = strings.Join(lines, "\n")
	}))
	w.bundle("other-log", edit(allow, func(eb *pb.EvidenceBundle) { eb.Checkpoint = otherCP.Msg.Checkpoint }))
	w.bundle("index-beyond-size", edit(allow, func(eb *pb.EvidenceBundle) { eb.Checkpoint = oldCP.Checkpoint }))
	w.bundle("chain-cut", edit(allow, func(eb *pb.EvidenceBundle) {
		eb.Chain = append(eb.Chain[:1:1], eb.Chain[2:]...) // drop anna's SMS opt-in between grant and confirmation
	}))
	optout := bundles["valid-allow-optout"]
	stop := ix["ben_stop_sms"]
	w.bundle("withdrawal-dropped", edit(optout, func(eb *pb.EvidenceBundle) {
		eb.Chain = dropIndex(eb.Chain, stop)
	}))
	w.bundle("withdrawal-altered", edit(optout, func(eb *pb.EvidenceBundle) {
		for _, pe := range eb.Chain {
			if pe.Index == stop {
				e := decode(pe.Entry)
				e.GetConsentWithdrawn().Channel = pb.Channel_CHANNEL_WHATSAPP
				pe.Entry = marshal(e)
			}
		}
	}))
	w.bundle("policy-swapped", edit(allow, func(eb *pb.EvidenceBundle) {
		eb.Policy = proto.Clone(bundles["allow-without-consent"].Policy).(*pb.ProvenEntry)
	}))
	witness := newSigner(witnessName)
	w.bundle("valid-cosigned", edit(allow, func(eb *pb.EvidenceBundle) { eb.Checkpoint = cosign(eb.Checkpoint, witness) }))

	// Forged: re-signed with the log's own key.
	signer, err := readSigner(a.dataDir)
	if err != nil {
		return err
	}
	entries, err := readEntries(ctx, a)
	if err != nil {
		return err
	}
	forge := func(change func(i uint64, e *pb.Entry) bool) *forgedLog {
		return newForgedLog(entries, signer, change)
	}
	decision := ix["anna_allow_wa"]
	type forgery struct {
		name   string
		bundle uint64
		change func(i uint64, e *pb.Entry) bool
	}
	forgeries := []forgery{
		{"forged-index-field", decision, func(i uint64, e *pb.Entry) bool {
			if i == decision {
				e.Index++
			}
			return i == decision
		}},
		{"forged-withdrawal", ix["ben_allow_wa"], func(i uint64, e *pb.Entry) bool {
			if i == stop {
				e.GetConsentWithdrawn().Channel = pb.Channel_CHANNEL_WHATSAPP
			}
			return i == stop
		}},
		{"forged-grant-purpose", decision, func(i uint64, e *pb.Entry) bool {
			if i == ix["anna_grant_wa"] {
				e.GetConsentGranted().Purposes = []string{"order_updates"}
			}
			return i == ix["anna_grant_wa"]
		}},
		{"forged-grant-after-decision", decision, func(i uint64, e *pb.Entry) bool {
			if i == ix["anna_grant_wa"] {
				e.RecordedAt = ts(day("2026-11-25 12:30"))
			}
			return i == ix["anna_grant_wa"]
		}},
		{"forged-no-double-opt-in", decision, func(i uint64, e *pb.Entry) bool {
			if i == ix["anna_confirm_wa"] {
				e.GetConsentConfirmed().Purposes = []string{"newsletter"}
			}
			return i == ix["anna_confirm_wa"]
		}},
		{"forged-policy-files", decision, func(i uint64, e *pb.Entry) bool {
			if i != 0 {
				return false
			}
			for _, f := range e.GetPolicyPublished().Files {
				if f.Name == "data.json" {
					f.Content = strings.Replace(f.Content, `"double_opt_in": true`, `"double_opt_in": false`, 1)
				}
			}
			return true
		}},
		{"forged-decision-digest", decision, func(i uint64, e *pb.Entry) bool {
			if i == decision {
				e.GetSendDecision().PolicyDigest = "sha256:" + strings.Repeat("0", 64)
			}
			return i == decision
		}},
		{"forged-replay", decision, func(i uint64, e *pb.Entry) bool {
			if i == decision {
				d := e.GetSendDecision()
				d.Input = bytes.Replace(d.Input, []byte(`"now":"2026-11-25T12:00:00Z"`), []byte(`"now":"2026-11-25T22:30:00Z"`), 1)
			}
			return i == decision
		}},
	}
	logs := map[string]*forgedLog{}
	for _, f := range forgeries {
		fl := forge(f.change)
		logs[f.name] = fl
		eb, err := fl.bundle(f.bundle)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		w.bundle(f.name, eb)
	}

	// Exports.
	var exp bytes.Buffer
	if _, err := a.c.Export(ctx, &exp, nil); err != nil {
		return err
	}
	w.file("export/log.export", exp.Bytes())
	flipped := bytes.Clone(exp.Bytes())
	at := bytes.Index(flipped, []byte("newsletter-48"))
	flipped[at+len("newsletter-")] ^= 0x01
	w.file("export/flipped-byte.export", flipped)
	w.file("export/truncated.export", exp.Bytes()[:exp.Len()*2/3])
	w.file("export/forged-replay.export", logs["forged-replay"].export())
	w.file("export/forged-fork.export", forge(func(i uint64, e *pb.Entry) bool {
		// Ben's RCS opt-in names his SMS opt-in as his previous consent
		// event, skipping his STOP: a log that hides an opt-out.
		if i != ix["ben_grant_rcs"] {
			return false
		}
		prev := ix["ben_grant_sms"]
		e.SubjectPrevIndex, e.SubjectPrevHash = &prev, ledger.LeafHash(entries[prev])
		return true
	}).export())
	w.file("export/forged-late-breach.export", forge(func(i uint64, e *pb.Entry) bool {
		if i == ix["breach2_authority"] {
			e.GetBreachAuthorityNotified().DelayReason = ""
		}
		return i == ix["breach2_authority"]
	}).export())

	// Consistency.
	w.file("consistency/old.checkpoint", []byte(oldCP.Checkpoint))
	w.file("consistency/new.checkpoint", []byte(newCP.Msg.Checkpoint))
	cons, err := a.c.Log.GetConsistencyProof(ctx, connect.NewRequest(&pb.GetConsistencyProofRequest{Size1: oldCP.Size, Size2: newCP.Msg.Size}))
	if err != nil {
		return err
	}
	w.file("consistency/proof.json", protoJSON(cons.Msg))
	bad := proto.Clone(cons.Msg).(*pb.GetConsistencyProofResponse)
	bad.Proof[len(bad.Proof)-1][0] ^= 0x80
	w.file("consistency/proof-bad.json", protoJSON(bad))
	fork := logs["forged-grant-purpose"]
	w.file("consistency/forked.checkpoint", fork.checkpoint())
	w.file("consistency/forked-proof.json", protoJSON(&pb.GetConsistencyProofResponse{
		Size1: oldCP.Size, Size2: fork.tree.Size(), Proof: must(fork.tree.ConsistencyProof(oldCP.Size, fork.tree.Size())),
	}))

	w.file("scenario.txt", scenarioText(ix))
	if w.err != nil {
		return w.err
	}
	log.Printf("wrote %d files to %s (log of %d entries, key %s)", w.n, out, newCP.Msg.Size, vkeyA)
	return nil
}

func scenarioText(ix indexes) []byte {
	byIndex := map[uint64]string{}
	var max uint64
	for k, v := range ix {
		byIndex[v] = k
		max = maxU(max, v)
	}
	var b bytes.Buffer
	b.WriteString("# The entries of the fixture log, as recorded by internal/fixturegen.\n")
	for i := uint64(0); i <= max; i++ {
		if n, ok := byIndex[i]; ok {
			fmt.Fprintf(&b, "%d\t%s\n", i, n)
		}
	}
	return b.Bytes()
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

func dropIndex(chain []*pb.ProvenEntry, index uint64) []*pb.ProvenEntry {
	var out []*pb.ProvenEntry
	for _, pe := range chain {
		if pe.Index != index {
			out = append(out, pe)
		}
	}
	return out
}

func edit(eb *pb.EvidenceBundle, f func(*pb.EvidenceBundle)) *pb.EvidenceBundle {
	c := proto.Clone(eb).(*pb.EvidenceBundle)
	f(c)
	return c
}

func decode(data []byte) *pb.Entry {
	e, err := ledger.DecodeEntry(data)
	if err != nil {
		panic(err)
	}
	return e
}

func marshal(e *pb.Entry) []byte {
	return must(proto.MarshalOptions{Deterministic: true}.Marshal(e))
}

// protoJSON writes a message as client.Evidence writes bundles.
func protoJSON(m proto.Message) []byte {
	b := must(protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(m))
	return append(b, '\n')
}

// readEntries reads every entry of the log.
func readEntries(ctx context.Context, s *srv) ([][]byte, error) {
	var out [][]byte
	for {
		r, err := s.c.Log.GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: uint64(len(out)), Count: 1000}))
		if err != nil {
			return nil, err
		}
		for _, e := range r.Msg.Entries {
			out = append(out, e.Entry)
		}
		if uint64(len(out)) >= r.Msg.Size || len(r.Msg.Entries) == 0 {
			return out, nil
		}
	}
}

type writer struct {
	dir string
	n   int
	err error
}

func (w *writer) mkdirs(dirs ...string) {
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(w.dir, d), 0o755); err != nil && w.err == nil {
			w.err = err
		}
	}
}

func (w *writer) file(name string, data []byte) {
	if w.err != nil {
		return
	}
	w.err = os.WriteFile(filepath.Join(w.dir, name), data, 0o644)
	w.n++
}

func (w *writer) bundle(name string, eb *pb.EvidenceBundle) {
	w.file("evidence/"+name+".json", protoJSON(eb))
}

var _ = hex.EncodeToString
