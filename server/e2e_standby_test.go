package server_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/internal/keycopy"
	"github.com/consentledger/consentledger/internal/trilliantest"
	"github.com/consentledger/consentledger/ledger/trillianlog"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// TestSkewedClockDoesNotLead: a node whose clock differs from the
// database's by more than the bound never takes the leader lease, even when
// it is free; a node with a correct clock does.
func TestSkewedClockDoesNotLead(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real servers (CI runs it without -short, where a missing binary fails it)")
	}
	env := trilliantest.Start(t)
	id, err := trillianlog.Init(context.Background(), env.LogAddr, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	st := server.StorageConfig{Trillian: env.LogAddr, Tree: id, SQL: env.DSN}
	var logs strings.Builder
	skewed := startLogging(t, server.Config{Storage: st, LeaseClock: func() time.Time { return time.Now().Add(2 * time.Second) }}, &logs, 0)
	time.Sleep(3 * time.Second) // three lease attempts
	if status := health(t, skewed, "consentledger.v1.SendService"); status != "SERVING_STATUS_NOT_SERVING" {
		t.Fatalf("SendService on the node with a skewed clock = %s, want NOT_SERVING (it must not lead)", status)
	}
	if !strings.Contains(logs.String(), "clock differs") {
		t.Errorf("the skewed node's log does not say why it does not lead:\n%s", logs.String())
	}
	good := startLogging(t, server.Config{Storage: st}, io.Discard, 0)
	for deadline := time.Now().Add(15 * time.Second); health(t, good, "consentledger.v1.SendService") != "SERVING_STATUS_SERVING"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the node with a correct clock did not take the free lease")
		}
	}
	if status := health(t, skewed, "consentledger.v1.SendService"); status != "SERVING_STATUS_NOT_SERVING" {
		t.Errorf("SendService on the skewed node = %s after another took the lease", status)
	}
}

// TestTakeoverKeepsStateAndPolicy: two nodes on one tree. The leader
// records an opt-in, publishes a new policy and records an opt-out, then
// stops; the standby takes over, decides with the policy the old leader
// published, and honours the opt-out the old leader acknowledged. Before
// that, the standby refused a write naming the leader, and served reads.
func TestTakeoverKeepsStateAndPolicy(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode: starts real servers (CI runs it without -short, where a missing binary fails it)")
	}
	env := trilliantest.Start(t)
	id, err := trillianlog.Init(context.Background(), env.LogAddr, env.DSN)
	if err != nil {
		t.Fatal(err)
	}
	st := server.StorageConfig{Trillian: env.LogAddr, Tree: id, SQL: env.DSN}
	a := start(t, server.Config{Storage: st, Advertise: "http://node-a.example"})
	b := start(t, server.Config{Storage: st, DataDir: keycopy.Dir(t, a.dataDir)})
	ctx := context.Background()
	optIn(t, a, anna, pb.Channel_CHANNEL_WHATSAPP, true, "marketing")
	files := pbFiles(policies.Default())
	for _, f := range files {
		if strings.HasSuffix(f.Name, ".rego") && !strings.HasSuffix(f.Name, "_test.rego") {
			f.Content += "\n# published on the old leader\n"
			break
		}
	}
	pub, err := a.policy().PublishPolicy(ctx, connect.NewRequest(&pb.PublishPolicyRequest{Files: files}))
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.consent().RecordOptOut(ctx, connect.NewRequest(&pb.RecordOptOutRequest{Subject: phone(anna), Channel: pb.Channel_CHANNEL_WHATSAPP}))
	if err != nil {
		t.Fatal(err)
	}
	// The standby refuses writes, naming the leader.
	_, err = b.consent().RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: phone("+49 151 1111111"),
		Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"marketing"}, Method: "checkout", NoticeVersion: "2026-01"}))
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), "http://node-a.example") {
		t.Fatalf("write on the standby: %v, want unavailable naming the leader", err)
	}
	// It serves reads of its own writes' state once it has applied them.
	r, err := b.consent().GetConsent(ctx, connect.NewRequest(&pb.GetConsentRequest{Subject: phone(anna), MinIndex: out.Msg.Entry.Index}))
	if err != nil {
		t.Fatalf("GetConsent on the standby with min_index: %v", err)
	}
	if got := r.Msg.GetHead().GetIndex(); got != out.Msg.Entry.Index {
		t.Errorf("the standby's consent head = %d, want the opt-out %d", got, out.Msg.Entry.Index)
	}
	a.stop() // releases the lease
	for deadline := time.Now().Add(15 * time.Second); health(t, b, "consentledger.v1.SendService") != "SERVING_STATUS_SERVING"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the standby did not take over within 15 s of the leader's clean stop")
		}
	}
	d := decide(t, b, waMarketing(anna))
	wantDecision(t, d, false, "consent_withdrawn")
	if d.Policy.GetIndex() != pub.Msg.Entry.Index {
		t.Errorf("the new leader decided with policy entry %d, want %d (published on the old leader)", d.Policy.GetIndex(), pub.Msg.Entry.Index)
	}
}
