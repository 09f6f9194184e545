package rpc

import (
	"context"
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/ledger/subject"
	"github.com/consentledger/consentledger/policies"
)

// invalid returns an invalid_argument error naming the field.
func invalid(field, format string, args ...any) error {
	return connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
}

// toConnect maps a domain error to a Connect error with an actionable message.
func toConnect(err error) error {
	if err == nil {
		return nil
	}
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	var fe *subject.FieldError
	var cpe *policies.CompileError
	var tf *policies.TestFailure
	switch {
	case errors.Is(err, ledger.ErrNotLeader):
		return notLeader(err)
	case errors.As(err, &fe):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.As(err, &cpe):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.As(err, &tf):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ledger.ErrInvalid):
		return connect.NewError(connect.CodeInvalidArgument, err)
	case errors.Is(err, ledger.ErrNotFound):
		return connect.NewError(connect.CodeNotFound, err)
	case errors.Is(err, ledger.ErrPrecondition):
		return connect.NewError(connect.CodeFailedPrecondition, err)
	case errors.Is(err, ledger.ErrConflict):
		return connect.NewError(connect.CodeAlreadyExists, err)
	case errors.Is(err, ledger.ErrStale):
		return connect.NewError(connect.CodeAborted, fmt.Errorf("%w; the ledger's state kept changing while the decision was evaluated: retry", err))
	case errors.Is(err, ledger.ErrClosed):
		return connect.NewError(connect.CodeUnavailable, err)
	case errors.Is(err, ledger.ErrStaleHead):
		// Only after many re-evaluations each overtaken by a new consent
		// event: the subject's consent is changing right now.
		return connect.NewError(connect.CodeAborted, fmt.Errorf("the subject's consent kept changing while the send was decided; retry the request: %w", err))
	case errors.Is(err, ledger.ErrNoSpace):
		return connect.NewError(connect.CodeResourceExhausted, err)
	case errors.Is(err, context.Canceled):
		return connect.NewError(connect.CodeCanceled, err)
	case errors.Is(err, context.DeadlineExceeded):
		return connect.NewError(connect.CodeDeadlineExceeded, err)
	}
	return connect.NewError(connect.CodeInternal, err)
}
