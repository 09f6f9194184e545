package policies

import (
	"context"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
)

// MaxInputSize is the largest input document [Set.Decide] accepts, in bytes.
const MaxInputSize = 1 << 20

// Decision is the answer of a policy set to one send request.
type Decision struct {
	Allow bool `json:"allow"`
	// Reasons are "code: sentence" strings, sorted: on a denial every failing
	// rule, on an allowed send what allowed it.
	Reasons []string `json:"reasons"`
}

var (
	// ErrInvalidInput is wrapped by errors about an input document that is
	// not a JSON object.
	ErrInvalidInput = errors.New("invalid policy input")
	// ErrNoDecision is wrapped when the policy yields no decision for an
	// input: an error, never a silent deny.
	ErrNoDecision = errors.New("policy yields no decision")
	// ErrMalformedDecision is wrapped when the policy's decision does not
	// have the documented shape.
	ErrMalformedDecision = errors.New("malformed policy decision")
)

// Decide evaluates the send decision for input, the JSON document described
// in README.md, with the query prepared by [Compile]. It is safe for
// concurrent use.
//
// An input that is not a single JSON object of at most [MaxInputSize] bytes
// is an error wrapping [ErrInvalidInput]. A policy that yields no decision,
// or a decision other than {"allow": bool, "reasons": [string, …]} with at
// least one reason on a denial, is an error wrapping [ErrNoDecision] or
// [ErrMalformedDecision]. A built-in error during evaluation (for example an
// unknown time zone) is an error too: the rules never skip silently.
func (s *Set) Decide(ctx context.Context, input []byte) (Decision, error) {
	v, err := ParseInput(input)
	if err != nil {
		return Decision{}, err
	}
	return s.DecideValue(ctx, v)
}

// DecideValue is [Set.Decide] for an input already parsed with [ParseInput].
func (s *Set) DecideValue(ctx context.Context, input ast.Value) (Decision, error) {
	c, stop := evalCancel(ctx)
	defer stop()
	rs, err := s.decision.Eval(ctx, rego.EvalParsedInput(input), rego.EvalExternalCancel(c), rego.EvalMetrics(metrics.NoOp()))
	if err != nil {
		return Decision{}, fmt.Errorf("policies: decide: %w", err)
	}
	return decisionFrom(rs)
}

// evalCancel returns what cancels one evaluation when ctx is done. Without
// it, PreparedEvalQuery.Eval starts a goroutine per evaluation to watch ctx,
// and starting and ending it wakes the other processor twice per decision,
// which cost more than the rest of a decision's evaluation on a busy
// two-core machine. context.AfterFunc watches ctx without a goroutine, and a
// context that can never be done (context.Background) needs no watching.
// The evaluation still stops with ctx's error as before. The returned stop
// function must be called when the evaluation ends.
func evalCancel(ctx context.Context) (topdown.Cancel, func() bool) {
	if ctx.Done() == nil {
		return neverCancelled, func() bool { return false }
	}
	c := topdown.NewCancel()
	return c, context.AfterFunc(ctx, c.Cancel)
}

// neverCancelled is the cancellation of evaluations under a context that is
// never done; nothing ever cancels it.
var neverCancelled = topdown.NewCancel()

// astResult makes a prepared query return AST values, which decisionFrom
// reads without converting the whole result to Go values first.
func astResult(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

var (
	allowKey   = ast.InternedTerm("allow")
	reasonsKey = ast.InternedTerm("reasons")
)

func decisionFrom(rs rego.ResultSet) (Decision, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return Decision{}, fmt.Errorf("policies: %w: %s is undefined", ErrNoDecision, DecisionRef)
	}
	if len(rs) > 1 {
		return Decision{}, fmt.Errorf("policies: %w: %d results, want 1", ErrMalformedDecision, len(rs))
	}
	obj, ok := rs[0].Expressions[0].Value.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("policies: %w: got %v, want an object", ErrMalformedDecision, rs[0].Expressions[0].Value)
	}
	var d Decision
	allow, ok := termValue(obj.Get(allowKey)).(ast.Boolean)
	if !ok {
		return Decision{}, fmt.Errorf("policies: %w: allow is %v, want a boolean", ErrMalformedDecision, obj.Get(allowKey))
	}
	d.Allow = bool(allow)
	reasons, ok := termValue(obj.Get(reasonsKey)).(*ast.Array)
	if !ok {
		return Decision{}, fmt.Errorf("policies: %w: reasons is %v, want an array of strings", ErrMalformedDecision, obj.Get(reasonsKey))
	}
	d.Reasons = make([]string, reasons.Len())
	for i := range d.Reasons {
		r, ok := reasons.Elem(i).Value.(ast.String)
		if !ok {
			return Decision{}, fmt.Errorf("policies: %w: reasons[%d] is %v, want a string", ErrMalformedDecision, i, reasons.Elem(i))
		}
		d.Reasons[i] = string(r)
	}
	if !d.Allow && len(d.Reasons) == 0 {
		return Decision{}, fmt.Errorf("policies: %w: a denial without reasons", ErrMalformedDecision)
	}
	return d, nil
}

func termValue(t *ast.Term) ast.Value {
	if t == nil {
		return nil
	}
	return t.Value
}
