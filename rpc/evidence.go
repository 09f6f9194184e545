package rpc

import (
	"context"
	"fmt"

	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// maxChain bounds the consent events between a grant and a decision's
// consent head that an evidence bundle carries.
const maxChain = 10000

// Evidence builds the evidence bundle of DESIGN §8 for the send decision at
// index: a signed checkpoint that includes it; the decision; the subject's
// consent events from the grant the decision relied on up to the consent
// head it names, oldest first; and the policy entry — each as stored bytes
// with its inclusion proof in that checkpoint.
func Evidence(ctx context.Context, l *ledger.Ledger, index uint64) (*pb.EvidenceBundle, error) {
	data, err := l.Entry(ctx, index)
	if err != nil {
		return nil, err
	}
	e, err := ledger.DecodeEntry(data)
	if err != nil {
		return nil, err
	}
	d := e.GetSendDecision()
	if d == nil {
		return nil, fmt.Errorf("%w: entry %d is not a send decision", ledger.ErrInvalid, index)
	}
	cp := l.LatestCheckpoint()
	if cp.Size <= index {
		if cp, err = l.SignCheckpoint(ctx); err != nil {
			return nil, err
		}
	}
	prove := func(i uint64, data []byte) (*pb.ProvenEntry, error) {
		p, err := l.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			return nil, err
		}
		return &pb.ProvenEntry{Index: i, Entry: data, InclusionProof: p}, nil
	}
	b := &pb.EvidenceBundle{Checkpoint: string(cp.Note)}
	if b.Decision, err = prove(index, data); err != nil {
		return nil, err
	}
	// Walk the subject's chain back from the consent head to the grant.
	if len(d.ConsentIndexes) > 0 && e.ConsentHeadIndex != nil {
		grant := d.ConsentIndexes[0]
		var chain []*pb.ProvenEntry
		for at := *e.ConsentHeadIndex; ; {
			cd, err := l.Entry(ctx, at)
			if err != nil {
				return nil, err
			}
			pe, err := prove(at, cd)
			if err != nil {
				return nil, err
			}
			chain = append(chain, pe)
			if at == grant {
				break
			}
			ce, err := ledger.DecodeEntry(cd)
			if err != nil {
				return nil, err
			}
			if ce.SubjectPrevIndex == nil || *ce.SubjectPrevIndex < grant || len(chain) >= maxChain {
				return nil, fmt.Errorf("the consent chain from entry %d does not lead back to grant %d", *e.ConsentHeadIndex, grant)
			}
			at = *ce.SubjectPrevIndex
		}
		for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
			chain[i], chain[j] = chain[j], chain[i]
		}
		b.Chain = chain
	}
	pd, err := l.Entry(ctx, d.PolicyIndex)
	if err != nil {
		return nil, err
	}
	if b.Policy, err = prove(d.PolicyIndex, pd); err != nil {
		return nil, err
	}
	if b.Notice, err = noticeEvidence(ctx, l, d, prove); err != nil {
		return nil, err
	}
	return b, nil
}
