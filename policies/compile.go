package policies

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/util"

	// Time zones for time.format/time.weekday on machines without a zone
	// database: quiet hours are evaluated in the subject's zone.
	_ "time/tzdata"
)

// The documents a policy set must define.
const (
	// DecisionRef is the send decision, {"allow": bool, "reasons": [string]}.
	DecisionRef = "data.consentledger.send.decision"
	// InboundActionRef is the action for an inbound text: "opt_out",
	// "opt_in", "help" or "none".
	InboundActionRef = "data.consentledger.inbound.action"
	// InboundKeywordRef is the normalised keyword that matched, "" if none.
	InboundKeywordRef = "data.consentledger.inbound.keyword"
	// InboundResultRef is optional: {"action", "keyword", "scope",
	// "purposes", "reply", "review_due_hours"} (see [InboundResult]).
	// Policies published before it existed leave it undefined.
	InboundResultRef = "data.consentledger.inbound.result"
)

// Set is a compiled policy set with its decision and inbound queries
// prepared once. A Set is immutable and safe for concurrent use.
type Set struct {
	files    []File
	digest   string
	store    storage.Store
	decision rego.PreparedEvalQuery
	inbound  rego.PreparedEvalQuery
	result   rego.PreparedEvalQuery // InboundResultRef
}

// Problem is one compile error: the file and line it points at (File is
// empty and Line 0 when the compiler gives no location) and the compiler's
// message, prefixed with its code ("rego_parse_error: unexpected eof token").
type Problem struct {
	File    string
	Line    int
	Message string
}

// String formats p as "file:line: message".
func (p Problem) String() string {
	switch {
	case p.File == "":
		return p.Message
	case p.Line == 0:
		return p.File + ": " + p.Message
	}
	return fmt.Sprintf("%s:%d: %s", p.File, p.Line, p.Message)
}

// CompileError reports why a policy set does not compile: a parse, type or
// strict-mode error in a module, invalid JSON in data.json, a missing
// required document, or a test module that fails to compile.
type CompileError struct {
	Problems []Problem // sorted by file and line
}

// Error lists every problem, one per line after the first.
func (e *CompileError) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.String()
	}
	return "policies: compile: " + strings.Join(lines, "\n\t")
}

func compileErrorFrom(errs ast.Errors) *CompileError {
	ce := &CompileError{}
	for _, e := range errs {
		p := Problem{Message: e.Code + ": " + e.Message}
		if e.Location != nil {
			p.File, p.Line = e.Location.File, e.Location.Row
		}
		ce.Problems = append(ce.Problems, p)
	}
	slices.SortStableFunc(ce.Problems, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
	})
	return ce
}

// Compile compiles a policy set strictly (Rego v1, strict mode, only
// deterministic built-ins) and prepares its decision and inbound queries.
// Tests (*_test.rego) are compiled too, so that a set whose tests do not
// compile is rejected, but they are not run; see [Set.Test] and [Check].
// Errors in the files are reported as a [*CompileError]; a malformed file
// list (bad names, duplicates, limits) wraps [ErrInvalidFiles].
func Compile(ctx context.Context, files []File) (*Set, error) {
	files, err := checkFiles(files)
	if err != nil {
		return nil, err
	}
	modules, data, err := parseFiles(files)
	if err != nil {
		return nil, err
	}
	c := newCompiler(false).WithStageAfterID(ast.StageCheckDeprecatedBuiltins, ast.CompilerStageDefinition{
		Name:       "FoldBaseData",
		MetricName: "compile_stage_fold_base_data",
		Stage:      foldBaseData(data),
	})
	if c.Compile(modules); c.Failed() {
		return nil, compileErrorFrom(c.Errors)
	}
	var missing []Problem
	for _, ref := range []string{DecisionRef, InboundActionRef, InboundKeywordRef} {
		if len(c.GetRules(ast.MustParseRef(ref))) == 0 {
			missing = append(missing, Problem{Message: "no rule defines " + ref})
		}
	}
	if missing != nil {
		return nil, &CompileError{Problems: missing}
	}

	s := &Set{files: files, digest: Digest(files), store: inmem.NewFromASTObject(data)}
	s.decision, err = rego.New(
		rego.Query(DecisionRef),
		rego.Compiler(c),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(true),
		rego.GenerateJSON(astResult),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare decision: %w", err)
	}
	s.inbound, err = rego.New(
		rego.Query("action := "+InboundActionRef+"; keyword := "+InboundKeywordRef),
		rego.Compiler(c),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare inbound: %w", err)
	}
	s.result, err = rego.New(
		rego.Query("result := "+InboundResultRef),
		rego.Compiler(c),
		rego.Store(s.store),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("policies: prepare inbound result: %w", err)
	}
	return s, nil
}

// Digest returns the set's digest; see [Digest].
func (s *Set) Digest() string { return s.digest }

// Files returns a copy of the set's files, sorted by name.
func (s *Set) Files() []File { return slices.Clone(s.files) }

// capabilities are this OPA version's built-ins minus the non-deterministic
// ones (time.now_ns, rand.intn, http.send, …): a decision must be
// reproducible from its recorded input.
var capabilities = func() *ast.Capabilities {
	caps := ast.CapabilitiesForThisVersion()
	caps.Builtins = slices.DeleteFunc(caps.Builtins, func(b *ast.Builtin) bool { return b.Nondeterministic })
	return caps
}()

func newCompiler(print bool) *ast.Compiler {
	return ast.NewCompiler().
		WithStrict(true).
		WithDefaultRegoVersion(ast.RegoV1).
		WithCapabilities(capabilities).
		WithEnablePrintStatements(print)
}

var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

// parseFiles parses the modules of checked files, keyed by file name, and
// data.json as an AST object (empty without one).
func parseFiles(files []File) (map[string]*ast.Module, ast.Object, error) {
	modules := make(map[string]*ast.Module, len(files))
	data := ast.NewObject()
	var errs ast.Errors
	var problems []Problem
	for _, f := range files {
		if f.Name == DataFile {
			d, p := parseData(f.Content)
			if p != nil {
				problems = append(problems, *p)
			}
			data = d
			continue
		}
		m, err := ast.ParseModuleWithOpts(f.Name, f.Content, parserOptions)
		if err != nil {
			var astErrs ast.Errors
			if errors.As(err, &astErrs) {
				errs = append(errs, astErrs...)
				continue
			}
			problems = append(problems, Problem{File: f.Name, Message: err.Error()})
			continue
		}
		if m == nil {
			problems = append(problems, Problem{File: f.Name, Message: "rego_parse_error: empty module"})
			continue
		}
		modules[f.Name] = m
	}
	if len(errs) > 0 || len(problems) > 0 {
		ce := compileErrorFrom(errs)
		ce.Problems = append(ce.Problems, problems...)
		slices.SortStableFunc(ce.Problems, func(a, b Problem) int {
			return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line))
		})
		return nil, nil, ce
	}
	return modules, data, nil
}

// parseData parses data.json, which must be a JSON object.
func parseData(content string) (ast.Object, *Problem) {
	var x any
	if err := util.UnmarshalJSON([]byte(content), &x); err != nil {
		p := &Problem{File: DataFile, Message: "invalid JSON: " + err.Error()}
		if se, ok := errors.AsType[*json.SyntaxError](err); ok {
			p.Line = 1 + strings.Count(content[:min(int(se.Offset), len(content))], "\n")
		}
		return nil, p
	}
	m, ok := x.(map[string]any)
	if !ok {
		return nil, &Problem{File: DataFile, Line: 1, Message: fmt.Sprintf("got JSON %s, want an object", jsonKind(x))}
	}
	v, err := ast.InterfaceToValue(m)
	if err != nil {
		return nil, &Problem{File: DataFile, Message: err.Error()}
	}
	return v.(ast.Object), nil
}

func jsonKind(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

// foldBaseData returns a compiler stage that writes the values of data.json
// into the rules the decision and inbound queries can reach: a reference
// such as data.consentledger.config.rules.quiet_hours becomes the constant
// true. Reading a base document costs about as much as a few conditions, and
// a policy reads data.json dozens of times per decision; a constant costs
// nothing, and lets OPA's rule index use `x in ["marketing"]`. The set's
// data never changes after Compile, so a reference and its value are
// interchangeable and every decision is the same as without folding.
//
// The stage runs after type checking and before the rule indices are built.
// It only affects this compiler: the set's tests ([Set.Test]) compile the
// files afresh. It folds nothing if a policy module, or a rule the queries
// can reach, replaces data with a `with` statement; it never folds a
// reference to a path at or under which a rule is defined (a virtual
// document), nor one with a variable or a key that is not a string, nor one
// to a value that is not there. Conditions folded to true (a switched-on
// rule) are then dropped.
func foldBaseData(data ast.Object) ast.CompilerStage {
	return func(c *ast.Compiler) *ast.Error {
		var roots []*ast.Rule
		for _, ref := range []string{DecisionRef, InboundActionRef, InboundKeywordRef, InboundResultRef} {
			roots = append(roots, c.GetRules(ast.MustParseRef(ref))...)
		}
		reachable := map[*ast.Rule]bool{}
		for len(roots) > 0 {
			r := roots[len(roots)-1]
			roots = roots[:len(roots)-1]
			if reachable[r] {
				continue
			}
			reachable[r] = true
			if r.Else != nil {
				roots = append(roots, r.Else)
			}
			for dep := range c.Graph.Dependencies(r) {
				roots = append(roots, dep.(*ast.Rule))
			}
		}
		for name, m := range c.Modules {
			if !strings.HasSuffix(name, "_test.rego") && replacesData(m) {
				return nil
			}
		}
		for r := range reachable {
			if replacesData(r) {
				return nil
			}
		}
		fold := func(ref ast.Ref) (ast.Value, error) {
			return foldRef(c.RuleTree, data, ref), nil
		}
		for r := range reachable {
			if _, err := ast.TransformRefs(r, fold); err != nil {
				return ast.NewError(ast.CompileErr, r.Location, "fold base data: %v", err)
			}
			r.Body = dropTrue(r.Body)
		}
		return nil
	}
}

// replacesData reports whether x has a `with data.… as …` statement.
func replacesData(x any) bool {
	found := false
	ast.WalkExprs(x, func(e *ast.Expr) bool {
		for _, w := range e.With {
			if ref, ok := w.Target.Value.(ast.Ref); ok && ref.HasPrefix(ast.DefaultRootRef) {
				found = true
			}
		}
		return found
	})
	return found
}

// dropTrue removes from body the conditions that are the constant true,
// such as a rule's switch once folded: they always hold, once, binding
// nothing. A body keeps at least one expression.
func dropTrue(body ast.Body) ast.Body {
	kept := body[:0:0]
	for _, e := range body {
		if t, ok := e.Terms.(*ast.Term); ok && !e.Negated && len(e.With) == 0 && ast.Boolean(true).Equal(t.Value) {
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 || len(kept) == len(body) {
		return body
	}
	for i, e := range kept {
		e.Index = i
	}
	return kept
}

// foldRef returns the value in data.json that ref, a reference without
// variables, reads, or ref unchanged. See foldBaseData.
func foldRef(rules *ast.TreeNode, data ast.Object, ref ast.Ref) ast.Value {
	if len(ref) < 2 || !ref[0].Equal(ast.DefaultRootDocument) {
		return ref
	}
	node := rules.Child(ref[0].Value)
	var v ast.Value = data
	n := 0 // elements of ref after data that are folded
	for _, t := range ref[1:] {
		if _, ok := t.Value.(ast.String); !ok {
			break
		}
		if node != nil {
			if len(node.Values) > 0 {
				return ref // a rule defines this path or one above it
			}
			node = node.Child(t.Value)
		}
		obj, ok := v.(ast.Object)
		if !ok {
			break
		}
		elem := obj.Get(t)
		if elem == nil {
			return ref
		}
		v = elem.Value
		n++
	}
	if n < len(ref)-1 || node != nil {
		// A reference with a variable stays: topdown evaluates references
		// rooted at a variable or data only. Nor is a path folded under which
		// rules are defined.
		return ref
	}
	return v
}
