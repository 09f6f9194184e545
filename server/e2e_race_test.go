package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/client"
	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
	"github.com/consentledger/consentledger/verifier"
)

// The server never records an input the log contradicts (DESIGN §4): with
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
