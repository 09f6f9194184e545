package server

import (
	"context"

	"connectrpc.com/grpchealth"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// writeServices are the services whose every useful call appends: they are
// NOT_SERVING while the ledger refuses appends.
var writeServices = map[string]bool{
	consentledgerv1connect.ConsentServiceName: true,
	consentledgerv1connect.SendServiceName:    true,
	consentledgerv1connect.BreachServiceName:  true,
	consentledgerv1connect.PolicyServiceName:  true,
}

// healthChecker answers grpc.health.v1 from the static registry (shutdown
// marks it NOT_SERVING) and from the ledger's state: after a storage failure
// (fail-stop until restart) the server as a whole is NOT_SERVING, and while
// the disk is below its reserve the write services are, so a load balancer
// routes writes elsewhere while reads go on.
type healthChecker struct {
	static *grpchealth.StaticChecker
	l      *ledger.Ledger
}

// Check implements grpchealth.Checker.
func (h healthChecker) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	resp, err := h.static.Check(ctx, req)
	if err != nil || resp.Status != grpchealth.StatusServing {
		return resp, err
	}
	switch {
	case h.l.Failure() != nil:
		resp.Status = grpchealth.StatusNotServing
	case h.l.IsStandby() && req.Service == consentledgerv1connect.SendServiceName:
		// Only the leader decides sends: a load balancer routes them there.
		resp.Status = grpchealth.StatusNotServing
	case h.l.Space().Low && writeServices[req.Service]:
		resp.Status = grpchealth.StatusNotServing
	}
	return resp, nil
}
