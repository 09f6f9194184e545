package policies

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/valyala/fastjson"
)

// ParseInput parses a policy input document into the AST value that OPA
// evaluates: exactly one JSON object (RFC 8259) of at most [MaxInputSize]
// bytes, without duplicate keys. Numbers keep their exact text; invalid
// UTF-8 in strings becomes U+FFFD, one per byte, as encoding/json reads it.
// The same bytes always give the same value, which is what makes a recorded
// input replayable. Errors wrap [ErrInvalidInput].
//
// It is several times faster than decoding with encoding/json and
// converting with ast.InterfaceToValue, with fewer allocations (see
// BenchmarkParseInput): the input is checked by validJSON, which accepts
// exactly what json.Valid accepts, and then converted straight from a
// fastjson parse tree; keys and common values share preallocated strings.
func ParseInput(input []byte) (ast.Value, error) {
	if len(input) > MaxInputSize {
		return nil, fmt.Errorf("policies: %w: %d bytes, want at most %d", ErrInvalidInput, len(input), MaxInputSize)
	}
	if !validJSON(input) {
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
			terms = append(terms, ast.Term{Value: textValue(k)}, ast.Term{Value: ev})
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
		return textValue(b), nil
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

// textValue is b as an AST string, invalid UTF-8 replaced (see valid),
// shared for the keys and values that occur in most inputs: boxing a string
// into an ast.Value allocates, and an input repeats the same few dozen names.
func textValue(b []byte) ast.Value {
	if v, ok := commonStrings[string(b)]; ok {
		return v
	}
	return ast.String(valid(string(b)))
}

// commonStrings are the input document's keys (README.md) and frequent
// values, each boxed once.
var commonStrings = func() map[string]ast.Value {
	words := []string{
		// keys
		"now", "request", "channel", "purpose", "category", "provider", "name", "region",
		"subject_timezone", "service_window_open", "message_ref", "subject", "known", "country",
		"consents", "status", "granted_at", "method", "notice_version", "notice_language", "double_opt_in",
		"confirmed_at", "withdrawn_at", "last_allowed_send_at", "grant_index",
		"confirmation_index", "withdrawal_index", "breaches", "breach_id", "channels", "detected_at",
		// values
		"", "whatsapp", "sms", "rcs", "email", "marketing", "order_updates", "support", "utility",
		"authentication", "service", "granted", "withdrawn", "erased", "open", "closed",
		"checkout", "web_form", "profile", "keyword", "paper", "api", "EU", "EEA", "US",
		"DE", "FR", "GB", "AT", "CH", "NL", "BE", "IT", "ES", "PL", "SE",
		"Europe/Berlin", "Europe/Paris", "Europe/London", "Europe/Vienna", "Europe/Zurich",
		"America/New_York", "UTC",
	}
	m := make(map[string]ast.Value, len(words))
	for _, w := range words {
		m[w] = ast.String(w)
	}
	return m
}()

// maxNestingDepth is encoding/json's limit on nested arrays and objects.
const maxNestingDepth = 10000

// validJSON reports whether data is one JSON value, optionally surrounded by
// white space, exactly as json.Valid does (RFC 8259; like json.Valid it does
// not check that strings are valid UTF-8, and it refuses more than 10,000
// nested arrays and objects). It is a single pass without allocation, several
// times faster than json.Valid's general-purpose scanner.
func validJSON(data []byte) bool {
	i := skipSpace(data, 0)
	i, ok := validValue(data, i, 0)
	return ok && skipSpace(data, i) == len(data)
}

func skipSpace(data []byte, i int) int {
	for i < len(data) {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// validValue checks the value starting at data[i] (no leading space), at the
// given depth of enclosing arrays and objects, and returns the index after it.
func validValue(data []byte, i, depth int) (int, bool) {
	if i >= len(data) {
		return i, false
	}
	switch c := data[i]; {
	case c == '{':
		if depth++; depth > maxNestingDepth {
			return i, false
		}
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == '}' {
			return i + 1, true
		}
		for {
			if i >= len(data) || data[i] != '"' {
				return i, false
			}
			var ok bool
			if i, ok = validString(data, i); !ok {
				return i, false
			}
			i = skipSpace(data, i)
			if i >= len(data) || data[i] != ':' {
				return i, false
			}
			if i, ok = validValue(data, skipSpace(data, i+1), depth); !ok {
				return i, false
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return i, false
			}
			switch data[i] {
			case ',':
				i = skipSpace(data, i+1)
			case '}':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '[':
		if depth++; depth > maxNestingDepth {
			return i, false
		}
		i = skipSpace(data, i+1)
		if i < len(data) && data[i] == ']' {
			return i + 1, true
		}
		for {
			var ok bool
			if i, ok = validValue(data, i, depth); !ok {
				return i, false
			}
			i = skipSpace(data, i)
			if i >= len(data) {
				return i, false
			}
			switch data[i] {
			case ',':
				i = skipSpace(data, i+1)
			case ']':
				return i + 1, true
			default:
				return i, false
			}
		}
	case c == '"':
		return validString(data, i)
	case c == 't':
		return i + 4, bytes.HasPrefix(data[i:], []byte("true"))
	case c == 'f':
		return i + 5, bytes.HasPrefix(data[i:], []byte("false"))
	case c == 'n':
		return i + 4, bytes.HasPrefix(data[i:], []byte("null"))
	case c == '-' || '0' <= c && c <= '9':
		return validNumber(data, i)
	}
	return i, false
}

// validString checks the string starting with the quote at data[i].
func validString(data []byte, i int) (int, bool) {
	for i++; i < len(data); i++ {
		switch c := data[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return i, false
		case c == '\\':
			i++
			if i >= len(data) {
				return i, false
			}
			switch data[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(data) {
					return i, false
				}
				for _, h := range data[i+1 : i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return i, false
					}
				}
				i += 4
			default:
				return i, false
			}
		}
	}
	return i, false
}

// validNumber checks the number starting at data[i]: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func validNumber(data []byte, i int) (int, bool) {
	if data[i] == '-' {
		i++
	}
	switch {
	case i < len(data) && data[i] == '0':
		i++
	case i < len(data) && '1' <= data[i] && data[i] <= '9':
		i = skipDigits(data, i+1)
	default:
		return i, false
	}
	if i < len(data) && data[i] == '.' {
		j := skipDigits(data, i+1)
		if j == i+1 {
			return j, false
		}
		i = j
	}
	if i < len(data) && (data[i] == 'e' || data[i] == 'E') {
		i++
		if i < len(data) && (data[i] == '+' || data[i] == '-') {
			i++
		}
		j := skipDigits(data, i)
		if j == i {
			return j, false
		}
		i = j
	}
	return i, true
}

func skipDigits(data []byte, i int) int {
	for i < len(data) && '0' <= data[i] && data[i] <= '9' {
		i++
	}
	return i
}
