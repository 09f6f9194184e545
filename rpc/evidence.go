package rpc

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/state"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// maxChain bounds the consent events between a grant and a decision's
// consent head that an evidence bundle carries.
const maxChain = 10000

// Evidence builds the evidence bundle of docs/entry-format.md: Evidence bundles for the send decision at
// index: a signed checkpoint that includes it; the decision; the subject's
// consent events from the first up to the consent head it names, oldest
// first; the policy entry; and the last allowed send the decision's input
// names for the consent it needs (field 6) — each as stored bytes with its
// inclusion proof in that checkpoint.
//
// The checkpoint carries the witness cosignatures stored for its size.
func Evidence(ctx context.Context, l *ledger.Ledger, index uint64) (*pb.EvidenceBundle, error) {
	return EvidenceAt(ctx, l, index, 0)
}

// EvidenceAt is [Evidence] in the kept checkpoint of exactly size (0: the
// latest, signing one first when the decision is newer).
func EvidenceAt(ctx context.Context, l *ledger.Ledger, index, size uint64) (*pb.EvidenceBundle, error) {
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
	if size > 0 {
		if cp, err = l.CheckpointAt(ctx, size); err != nil {
			return nil, err
		}
		if cp.Size <= index {
			return nil, fmt.Errorf("%w: the checkpoint of size %d does not include decision %d", ledger.ErrInvalid, size, index)
		}
	} else if cp == nil || cp.Size <= index {
		if cp, err = l.SignCheckpoint(ctx); err != nil {
			return nil, err
		}
		if cp == nil || cp.Size <= index {
			return nil, fmt.Errorf("%w: no signed checkpoint includes decision %d yet; retry in a second", ledger.ErrClosed, index)
		}
	}
	cosigned, _, err := l.WithCosignatures(ctx, cp)
	if err != nil {
		return nil, err
	}
	prove := func(i uint64, data []byte) (*pb.ProvenEntry, error) {
		p, err := l.InclusionProof(ctx, i, cp.Size)
		if err != nil {
			return nil, err
		}
		return &pb.ProvenEntry{Index: i, Entry: data, InclusionProof: p}, nil
	}
	b := &pb.EvidenceBundle{Checkpoint: string(cosigned)}
	if b.Decision, err = prove(index, data); err != nil {
		return nil, err
	}
	// Walk the subject's chain back from the consent head to the subject's
	// first consent event, so that a verifier can derive the whole consent
	// state (check 6); it must reach the grant the decision relied on.
	if e.ConsentHeadIndex != nil {
		grant, needGrant := uint64(0), len(d.ConsentIndexes) > 0
		if needGrant {
			grant = d.ConsentIndexes[0]
		}
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
			ce, err := ledger.DecodeEntry(cd)
			if err != nil {
				return nil, err
			}
			reached := !needGrant || at <= grant
			if ce.SubjectPrevIndex == nil || (reached && len(chain) >= maxChain) {
				if !reached || (needGrant && !containsIndex(chain, grant)) {
					return nil, fmt.Errorf("the consent chain from entry %d does not lead back to grant %d", *e.ConsentHeadIndex, grant)
				}
				break
			}
			if len(chain) >= 2*maxChain {
				return nil, fmt.Errorf("the consent chain from entry %d is longer than %d events", *e.ConsentHeadIndex, 2*maxChain)
			}
			at = *ce.SubjectPrevIndex
		}
		for i, j := 0, len(chain)-1; i < j; i, j = i+1, j-1 {
			chain[i], chain[j] = chain[j], chain[i]
		}
		b.Chain = chain
	}
	if ls, err := lastAllowedSend(ctx, l, index, e, d); err != nil {
		return nil, err
	} else if ls != nil {
		if b.LastAllowedSend, err = prove(ls.index, ls.data); err != nil {
			return nil, err
		}
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

func containsIndex(chain []*pb.ProvenEntry, i uint64) bool {
	for _, p := range chain {
		if p.Index == i {
			return true
		}
	}
	return false
}

type rawEntry struct {
	index uint64
	data  []byte
}

// lastAllowedSend finds the entry behind the last_allowed_send_at that the
// decision's input names for the consent the request needs: an allowed
// decision for the same subject, channel and purpose, before the decision,
// recorded at exactly that time. recorded_at never decreases along the log,
// so a binary search finds the first entry recorded at that time. It
// returns nil if the input names none.
func lastAllowedSend(ctx context.Context, l *ledger.Ledger, index uint64, e *pb.Entry, d *pb.SendDecision) (*rawEntry, error) {
	req := d.GetRequest()
	purpose := state.ConsentPurpose(req)
	var in struct {
		Subject struct {
			Consents map[string]map[string]struct {
				LastAllowedSendAt string `json:"last_allowed_send_at"`
			} `json:"consents"`
		} `json:"subject"`
	}
	if json.Unmarshal(d.Input, &in) != nil {
		return nil, nil
	}
	at := in.Subject.Consents[state.ChannelName(req.GetChannel())][purpose].LastAllowedSendAt
	if at == "" {
		return nil, nil
	}
	t, err := time.Parse(time.RFC3339Nano, at)
	if err != nil {
		return nil, nil
	}
	recorded := func(i uint64) (*pb.Entry, []byte, error) {
		data, err := l.Entry(ctx, i)
		if err != nil {
			return nil, nil, err
		}
		ce, err := ledger.DecodeEntry(data)
		return ce, data, err
	}
	var searchErr error
	first := sort.Search(int(index), func(i int) bool {
		ce, _, err := recorded(uint64(i))
		if err != nil {
			searchErr = err
			return true
		}
		return !ce.GetRecordedAt().AsTime().Before(t)
	})
	if searchErr != nil {
		return nil, searchErr
	}
	var found *rawEntry
	for i := uint64(first); i < index; i++ {
		ce, data, err := recorded(i)
		if err != nil {
			return nil, err
		}
		if !ce.GetRecordedAt().AsTime().Equal(t) {
			break
		}
		if cd := ce.GetSendDecision(); cd != nil && cd.Allow && ce.SubjectId == e.SubjectId &&
			cd.GetRequest().GetChannel() == req.GetChannel() && cd.GetRequest().GetPurpose() == purpose {
			found = &rawEntry{index: i, data: data}
		}
	}
	return found, nil
}
