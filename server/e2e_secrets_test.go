package server_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/server"
)

// syncBuffer is a bytes.Buffer safe for the server's concurrent logging.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoSecretInLogs drives the server with authenticated and refused
// calls that carry a phone number, an e-mail address and an external id,
// with debug logging on, and then searches everything it logged for the
// tokens and the identifiers, in every form they were sent in.
func TestNoSecretInLogs(t *testing.T) {
	var logs syncBuffer
	const senderToken, adminToken, wrongToken = "tok-sender-7f3a9c", "tok-admin-51be02", "tok-wrong-0d44e1"
	cfg := server.Config{Principals: []server.PrincipalConfig{
		{Name: "shop", Role: "sender", TokenSHA256: tokenHash(senderToken)},
		{Name: "ops", Role: "admin", TokenSHA256: tokenHash(adminToken)},
	}}
	s := startLogging(t, cfg, &logs, slog.LevelDebug)
	ctx := context.Background()
	auth := func(tok string) connect.ClientOption {
		return connect.WithInterceptors(connect.UnaryInterceptorFunc(func(next connect.UnaryFunc) connect.UnaryFunc {
			return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
				req.Header().Set("Authorization", "Bearer "+tok)
				return next(ctx, req)
			}
		}))
	}
	phoneSent, email, ext := "+49 170 5551234", "Anna.Beispiel@Example.COM", "crm-7788-anna"
	subjects := []*pb.Subject{
		{Id: &pb.Subject_Phone{Phone: phoneSent}},
		{Id: &pb.Subject_Email{Email: email}},
		{Id: &pb.Subject_ExternalId{ExternalId: ext}},
	}
	for _, sub := range subjects {
		if _, err := s.consent(auth(senderToken)).RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{
			Subject: sub, Channel: pb.Channel_CHANNEL_WHATSAPP, Purposes: []string{"marketing"}, Method: "checkout", DoubleOptInConfirmed: true,
		})); err != nil {
			t.Fatal(err)
		}
		req := waMarketing(phoneSent)
		req.Subject = sub
		if _, err := s.send(auth(senderToken)).Decide(ctx, connect.NewRequest(req)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.consent(auth(senderToken)).HandleInbound(ctx, connect.NewRequest(&pb.HandleInboundRequest{
			Subject: sub, Channel: pb.Channel_CHANNEL_WHATSAPP, Text: "STOP",
		})); err != nil {
			t.Fatal(err)
		}
		// Refused calls: a wrong token, a role that may not, bad input.
		s.consent(auth(wrongToken)).RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: sub, Channel: pb.Channel_CHANNEL_SMS}))
		s.consent(auth(senderToken)).EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{Subject: sub}))
		s.consent(auth(senderToken)).RecordOptIn(ctx, connect.NewRequest(&pb.RecordOptInRequest{Subject: sub, Channel: pb.Channel_CHANNEL_SMS, Purposes: []string{"Not A Purpose"}}))
		if _, err := s.consent(auth(adminToken)).EraseSubject(ctx, connect.NewRequest(&pb.EraseSubjectRequest{Subject: sub})); err != nil {
			t.Fatal(err)
		}
	}
	s.stop()

	out := logs.String()
	if !strings.Contains(out, "level=") {
		t.Fatalf("the server logged nothing; the test would prove nothing:\n%s", out)
	}
	for _, secret := range []string{
		senderToken, adminToken, wrongToken,
		phoneSent, "+491705551234", "1705551234", "5551234",
		email, strings.ToLower(email), "anna.beispiel", ext,
	} {
		if strings.Contains(out, secret) {
			t.Errorf("the server's log holds %q", secret)
		}
	}
	t.Logf("searched %d bytes of server log", len(out))
}
