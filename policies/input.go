package policies

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/valyala/fastjson"
)

// ParseInput parses a policy input document into the AST value that OPA
// evaluates: exactly one JSON object (RFC 8259) of at most [MaxInputSize]
// bytes, without duplicate keys. Numbers keep their exact text; invalid
// UTF-8 in strings becomes U+FFFD. The same bytes always give the same
// value, which is what makes a recorded input replayable. Errors wrap
// [ErrInvalidInput].
//
// It is about twice as fast as decoding with encoding/json and converting
// with ast.InterfaceToValue, with fewer allocations (see
// BenchmarkParseInput): the input is checked with json.Valid and then
// converted straight from a fastjson parse tree.
func ParseInput(input []byte) (ast.Value, error) {
	if len(input) > MaxInputSize {
		return nil, fmt.Errorf("policies: %w: %d bytes, want at most %d", ErrInvalidInput, len(input), MaxInputSize)
	}
	if !json.Valid(input) {
		var x any
		err := json.Unmarshal(input, &x) // only to explain what is wrong
		if err == nil {
			err = fmt.Errorf("not valid JSON")
		}
		return nil, fmt.Errorf("policies: %w: %w", ErrInvalidInput, err)
	}
	p := parsers.Get()
	defer parsers.Put(p)
	v, err := p.ParseBytes(input)
	if err != nil {
		return nil, fmt.Errorf("policies: %w: %w", ErrInvalidInput, err)
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("policies: %w: got JSON %s, want an object", ErrInvalidInput, v.Type())
	}
	// The parse tree points into the parser's buffers: toValue copies.
	return toValue(v)
}

var parsers fastjson.ParserPool

func toValue(v *fastjson.Value) (ast.Value, error) {
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		obj := ast.NewObjectWithCapacity(o.Len())
		terms := make([]ast.Term, 0, 2*o.Len())
		var err error
		o.Visit(func(k []byte, e *fastjson.Value) {
			if err != nil {
				return
			}
			var ev ast.Value
			if ev, err = toValue(e); err != nil {
				return
			}
			terms = append(terms, ast.Term{Value: ast.String(text(k))}, ast.Term{Value: ev})
			n := len(terms)
			obj.Insert(&terms[n-2], &terms[n-1])
			if obj.Len() != n/2 {
				err = fmt.Errorf("policies: %w: duplicate key %q", ErrInvalidInput, k)
			}
		})
		return obj, err
	case fastjson.TypeArray:
		a, _ := v.Array()
		terms := make([]ast.Term, len(a))
		ptrs := make([]*ast.Term, len(a))
		for i, e := range a {
			ev, err := toValue(e)
			if err != nil {
				return nil, err
			}
			terms[i].Value = ev
			ptrs[i] = &terms[i]
		}
		return ast.NewArray(ptrs...), nil
	case fastjson.TypeString:
		b, _ := v.StringBytes()
		return ast.String(text(b)), nil
	case fastjson.TypeNumber:
		var buf [32]byte
		n := v.MarshalTo(buf[:0])
		if t := ast.InternedIntNumberTermFromString(string(n)); t != nil {
			return t.Value, nil
		}
		return ast.Number(n), nil
	case fastjson.TypeTrue:
		return ast.Boolean(true), nil
	case fastjson.TypeFalse:
		return ast.Boolean(false), nil
	}
	return ast.NullValue, nil
}

// text copies b into a string, replacing invalid UTF-8 with U+FFFD.
func text(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}
