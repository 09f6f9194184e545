package rpc

import (
	"context"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// noticeEvidence returns bundle field 5 (docs/entry-format.md): the
// NoticePublished entry the decision's grant names, proven; nil when the
// decision relied on no grant or the grant names no published notice.
func noticeEvidence(ctx context.Context, l *ledger.Ledger, d *pb.SendDecision, prove func(uint64, []byte) (*pb.ProvenEntry, error)) (*pb.ProvenEntry, error) {
	if len(d.ConsentIndexes) == 0 {
		return nil, nil
	}
	gd, err := l.Entry(ctx, d.ConsentIndexes[0])
	if err != nil {
		return nil, err
	}
	g, err := ledger.DecodeEntry(gd)
	if err != nil {
		return nil, err
	}
	idx := g.GetConsentGranted().NoticeIndex
	if idx == nil {
		return nil, nil
	}
	nd, err := l.Entry(ctx, *idx)
	if err != nil {
		return nil, err
	}
	return prove(*idx, nd)
}
