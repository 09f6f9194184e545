package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

// The server never records an input the log contradicts (docs/guarantees.md): with
// policies published, breaches reported and closed, and several decisions
// for the same subject all racing, every decision's recorded input equals
// the one the audit derives from the log before it, and every decision
// names the policy in force.
func TestDecisionsRaceStateChanges(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing", "order_updates")
	const rounds = 6
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	// Decisions for the same subject, on two channels: each allowed one
	// changes the subject's last allowed send that the others' inputs list.
	for w := range 4 {
		wg.Go(func() {
			for i := range 8 * rounds {
				req := waMarketing(anna)
				if (w+i)%2 == 1 {
					req = &pb.DecideRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_SMS, Purpose: "order_updates", SubjectTimezone: "Europe/Berlin"}
				}
				if _, err := s.send().Decide(ctx, connect.NewRequest(req)); err != nil {
					errs <- fmt.Errorf("Decide: %w", err)
					return
				}
			}
		})
	}
	// Breaches on WhatsApp reported and closed.
	wg.Go(func() {
		for range rounds {
			rep, err := s.breach().ReportBreach(ctx, connect.NewRequest(&pb.ReportBreachRequest{
				Description: "gateway credentials leaked", Channels: []pb.Channel{pb.Channel_CHANNEL_WHATSAPP}, Risk: "high",
			}))
			if err != nil {
				errs <- fmt.Errorf("ReportBreach: %w", err)
				return
			}
			if _, err := s.breach().CloseBreach(ctx, connect.NewRequest(&pb.CloseBreachRequest{BreachId: rep.Msg.BreachId})); err != nil {
				errs <- fmt.Errorf("CloseBreach: %w", err)
				return
			}
		}
	})
	// Policies published: the default with a comment that changes its digest.
	wg.Go(func() {
		for i := range rounds {
			files := pbFiles(policies.Default())
			for _, f := range files {
				if strings.HasSuffix(f.Name, ".rego") && !strings.HasSuffix(f.Name, "_test.rego") {
					f.Content += fmt.Sprintf("\n# publication %d\n", i)
					break
				}
			}
			if _, err := s.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files})); err != nil {
				errs <- fmt.Errorf("PublishPolicy: %w", err)
				return
			}
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	c, err := client.New(s.url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var exp bytes.Buffer
	if _, err := c.Export(ctx, &exp, nil); err != nil {
		t.Fatal(err)
	}
	vkey, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.Audit(ctx, &exp, vkey, nil)
	if err != nil {
		t.Fatalf("audit of the raced log: %v", err)
	}
	if got := rep.Allowed + rep.Denied; got != 4*8*rounds {
		t.Errorf("audit saw %d decisions, want %d", got, 4*8*rounds)
	}
	if rep.Allowed == 0 {
		t.Error("no decision was allowed: the race exercised no last allowed send")
	}
}

// A bundle from GetEvidence carries the subject's whole consent chain and
// the last allowed send the input names, so check 6 shows everything a
// bundle can: only the facts the audit proves remain unproven.
func TestEvidenceShowsInput(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing")
	optIn(t, s, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	first := decide(t, s, waMarketing(anna))
	s.clock.Add(time.Hour)
	second := decide(t, s, waMarketing(anna))
	if !first.Allow || !second.Allow {
		t.Fatalf("decisions %v, %v; want both allowed", first, second)
	}
	ev, err := s.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: second.Decision.Index}))
	if err != nil {
		t.Fatal(err)
	}
	b := ev.Msg.Bundle
	if len(b.Chain) != 2 || b.Chain[0].Index != 1 || b.LastAllowedSend.GetIndex() != first.Decision.Index {
		t.Fatalf("bundle chain %v, last allowed send %v; want the chain from #1 and the send #%d", b.Chain, b.LastAllowedSend, first.Decision.Index)
	}
	vkey, err := ledger.ReadVerifierKey(s.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	key, err := verifier.ParseKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := verifier.VerifyBundle(ctx, b, key)
	if err != nil || !rep.Verified || rep.Checks[verifier.CheckInput-1].Status != verifier.StatusPassed {
		t.Fatalf("VerifyBundle = %v; want verified with check 6 passed", err)
	}
	for _, n := range rep.NotProven {
		if strings.HasPrefix(n, "Not shown") {
			t.Errorf("a fresh bundle does not show: %s", n)
		}
	}
	if len(rep.NotProven) < 3 {
		t.Errorf("the report names %d facts the bundle cannot prove, want breaches, policy and head at least", len(rep.NotProven))
	}
	// The first decision had no earlier send: no field 6.
	ev, err = s.logs().GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: first.Decision.Index}))
	if err != nil || ev.Msg.Bundle.LastAllowedSend != nil {
		t.Fatalf("first decision's bundle: %v, last allowed send %v; want none", err, ev.Msg.Bundle.GetLastAllowedSend())
	}
}
