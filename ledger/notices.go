package ledger

import (
	"context"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Tables of README.md: Privacy notices, breaches, reports in the state index.
const (
	tabNotice = 'n' // 'n' version 0x00 language → NoticeState
	tabPlan   = 'o' // 'o' → PlanState (the plan in force); 'o' '/' version → PlanState
)

func noticeKey(version, language string) []byte {
	return append(append(append([]byte{tabNotice}, version...), 0), language...)
}

var planKey = []byte{tabPlan}

func planVersionKey(version string) []byte { return append([]byte{tabPlan, '/'}, version...) }

// Assessment levels of a breach (BreachAssessed.level).
const (
	RiskNone = "no_risk"
	RiskSome = "risk"
	RiskHigh = "high_risk"
)

// checkRule2 refuses a §14 entry the state does not allow (a notice or plan
// version published twice, a step or assessment of an unknown breach).
func checkRule2(w stateWriter, e *pb.Entry) error {
	switch ev := e.Event.(type) {
	case *pb.Entry_NoticePublished:
		n := ev.NoticePublished
		if _, ok, err := w.o.get(noticeKey(n.Version, n.Language)); err != nil || ok {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: notice version %q in language %q is already published; publish a new version", ErrConflict, n.Version, n.Language)
		}
	case *pb.Entry_PlanPublished:
		if _, ok, err := w.o.get(planVersionKey(ev.PlanPublished.Version)); err != nil || ok {
			if err != nil {
				return err
			}
			return fmt.Errorf("%w: plan version %q is already published; publish a new version", ErrConflict, ev.PlanPublished.Version)
		}
	case *pb.Entry_BreachAssessed, *pb.Entry_BreachStepCompleted:
		id := rule2BreachID(e)
		b, err := w.breach(id)
		if err != nil {
			return err
		}
		if b == nil {
			return fmt.Errorf("%w: no breach with id %q", ErrNotFound, id)
		}
		if s := e.GetBreachStepCompleted(); s != nil {
			for _, done := range b.Steps {
				if done.StepId == s.StepId {
					return fmt.Errorf("%w: step %q of breach %q is already completed (entry %d)", ErrConflict, s.StepId, id, done.Entry.GetIndex())
				}
			}
		}
	}
	return nil
}

func rule2BreachID(e *pb.Entry) string {
	switch ev := e.Event.(type) {
	case *pb.Entry_BreachAssessed:
		return ev.BreachAssessed.BreachId
	case *pb.Entry_BreachStepCompleted:
		return ev.BreachStepCompleted.BreachId
	}
	return ""
}

// applyRule2 updates the state index for a notice or plan publication
// (assessments and completed steps are breach events: package state folds
// them).
func applyRule2(w stateWriter, e *pb.Entry, ref *pb.EntryRef) error {
	switch ev := e.Event.(type) {
	case *pb.Entry_NoticePublished:
		n := ev.NoticePublished
		return w.put(noticeKey(n.Version, n.Language), &pb.NoticeState{
			Entry: ref, Version: n.Version, Language: n.Language, Title: n.Title, Channels: n.Channels,
			Purposes: n.Purposes, EffectiveFrom: n.EffectiveFrom, Digest: n.Digest,
		})
	case *pb.Entry_PlanPublished:
		st := &pb.PlanState{Entry: ref, Version: ev.PlanPublished.Version}
		if err := w.put(planVersionKey(st.Version), st); err != nil {
			return err
		}
		return w.put(planKey, st)
	}
	return nil
}

// Notices returns every published notice, by version and language.
func (l *Ledger) Notices(ctx context.Context) ([]*pb.NoticeState, error) {
	var out []*pb.NoticeState
	err := l.store.View(ctx, func(tx storage.ReadTx) error {
		return tx.Scan([]byte{tabNotice}, storage.PrefixEnd([]byte{tabNotice}), func(_, v []byte) error {
			n := new(pb.NoticeState)
			if err := proto.Unmarshal(v, n); err != nil {
				return fmt.Errorf("decode notice state: %w", err)
			}
			out = append(out, n)
			return nil
		})
	})
	return out, err
}

// NoticeVersions returns the published notices of one version, by language.
func (l *Ledger) NoticeVersions(ctx context.Context, version string) ([]*pb.NoticeState, error) {
	all, err := l.Notices(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(n *pb.NoticeState) bool { return n.Version != version }), nil
}

// Plan returns the breach response plan in force, or ErrNotFound.
func (l *Ledger) Plan(ctx context.Context) (*pb.PlanState, error) {
	return viewProto(ctx, l, planKey, new(pb.PlanState), "breach response plan")
}
