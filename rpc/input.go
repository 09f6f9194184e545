package rpc

import (
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/consentledger/consentledger/ledger/state"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// buildInput returns the policy input document (policies/README.md) for a
// send request, whether the ledger knows the subject (LookupSubject's
// found), the subject's state (nil if none) and the open breaches,
// built by the one derivation the verifier also uses (package state): the
// AST value to evaluate, and the same value as the JSON to record with the
// decision.
func buildInput(now time.Time, req *pb.SendRequest, known bool, st *pb.SubjectState, breaches []*pb.BreachState) (ast.Value, []byte) {
	v := state.Input(now, req, known, st, breaches).Value()
	return v, policies.AppendJSON(make([]byte, 0, 1024), v)
}

// openBreaches is the cached set of open breaches and the latest breach
// event it was read at (Request.ExpectedBreaches).
type openBreaches struct {
	list  []*pb.BreachState
	epoch *pb.EntryRef
}
