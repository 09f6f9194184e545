package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/rpc"
	"github.com/consentledger/consentledger/server"
)

// TestMinIndexReadsOwnWrites: through the real server, a read with the
// min_index of a write just acknowledged answers at once and sees it (Connect
// binary and JSON's minIndex); one beyond the log answers unavailable after
// rpc.DefaultMinIndexWait, saying how far the node has got.
func TestMinIndexReadsOwnWrites(t *testing.T) {
	s := start(t, server.Config{})
	ctx := context.Background()
	w := optIn(t, s, anna, pb.Channel_CHANNEL_SMS, true, "marketing")

	began := time.Now()
	c, err := s.consent().GetConsent(ctx, connect.NewRequest(&pb.GetConsentRequest{Subject: phone(anna), MinIndex: w.Index}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Msg.Head.GetIndex() != w.Index {
		t.Errorf("GetConsent's head is %v, want the write at %d", c.Msg.Head, w.Index)
	}
	resp, body := s.post(t, ctx, "/consentledger.v1.LogService/GetEntries", "application/json", "",
		strings.NewReader(fmt.Sprintf(`{"start":"%d","count":1,"minIndex":"%d"}`, w.Index, w.Index)))
	if resp == nil || resp.StatusCode != http.StatusOK || !strings.Contains(body, `"index":"`+fmt.Sprint(w.Index)+`"`) {
		t.Errorf("GetEntries with minIndex in JSON: %v %s", resp, body)
	}
	if d := time.Since(began); d > rpc.DefaultMinIndexWait/2 {
		t.Errorf("reads of an applied index took %v", d)
	}

	size := uint64(w.Index + 1)
	began = time.Now()
	_, err = s.logs().GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{MinIndex: size + 100}))
	took := time.Since(began)
	if connect.CodeOf(err) != connect.CodeUnavailable || !strings.Contains(err.Error(), fmt.Sprintf("applied %d entries", size)) {
		t.Fatalf("GetCheckpoint beyond the log: %v, want unavailable saying the node applied %d entries", err, size)
	}
	if took < rpc.DefaultMinIndexWait || took > rpc.DefaultMinIndexWait+10*time.Second {
		t.Errorf("answered after %v, want after %v", took, rpc.DefaultMinIndexWait)
	}
}
