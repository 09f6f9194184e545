package policies

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/util"
)

// benchInput is a realistic send: a marketing WhatsApp template to a German
// subject with consents on two channels and one open breach elsewhere.
const benchInput = `{
  "now": "2026-11-26T10:00:00Z",
  "request": {
    "channel": "whatsapp", "purpose": "marketing", "category": "marketing",
    "provider": {"name": "eu-bsp", "region": "EU"},
    "subject_timezone": "Europe/Berlin", "service_window_open": false,
    "message_ref": "order-123"
  },
  "subject": {
    "known": true, "country": "DE",
    "consents": {
      "whatsapp": {
        "marketing": {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout",
          "notice_version": "2026-01", "double_opt_in": true, "confirmed_at": "2026-01-05T09:10:00Z",
          "last_allowed_send_at": "2026-11-20T10:00:00Z", "grant_index": 12, "confirmation_index": 13},
        "order_updates": {"status": "granted", "granted_at": "2026-01-05T09:00:00Z", "method": "checkout",
          "notice_version": "2026-01", "double_opt_in": false, "grant_index": 12}
      },
      "sms": {
        "marketing": {"status": "withdrawn", "granted_at": "2025-03-01T09:00:00Z", "method": "web_form",
          "notice_version": "2025-02", "double_opt_in": true, "withdrawn_at": "2026-02-01T08:00:00Z",
          "grant_index": 3, "withdrawal_index": 20}
      }
    }
  },
  "breaches": [{"breach_id": "br-1", "status": "open", "channels": ["email"], "detected_at": "2026-11-25T08:00:00Z"}]
}`

// BenchmarkDecide measures one decision with the default policy and its
// prepared query, as the ledger makes it: the input document built as an
// AST value (Input.Value) and evaluated (DecideValue). It reports the median
// and 99th percentile of the per-operation durations.
func BenchmarkDecide(b *testing.B) {
	benchDecide(b, func(s *Set) (Decision, error) {
		return s.DecideValue(context.Background(), benchDocument.Value())
	})
}

// BenchmarkDecideJSON is BenchmarkDecide from the recorded JSON bytes, as
// Replay, ImpactReport and the verifier evaluate: parsing and evaluation.
func BenchmarkDecideJSON(b *testing.B) {
	in := []byte(benchInput)
	benchDecide(b, func(s *Set) (Decision, error) {
		return s.Decide(context.Background(), in)
	})
}

func benchDecide(b *testing.B, decide func(*Set) (Decision, error)) {
	s, err := Compile(context.Background(), Default())
	if err != nil {
		b.Fatal(err)
	}
	d, err := decide(s)
	if err != nil || !d.Allow {
		b.Fatalf("decision = %+v, %v; want an allowed send", d, err)
	}
	b.ResetTimer()
	timed(b, func() {
		if _, err := decide(s); err != nil {
			b.Fatal(err)
		}
	})
}

// timed runs f in b's loop and reports, besides allocations, the median and
// the 99th percentile of its durations.
func timed(b *testing.B, f func()) {
	durations := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		f()
		durations = append(durations, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(durations)
	b.ReportMetric(float64(durations[len(durations)/2].Nanoseconds())/1e3, "p50-µs")
	b.ReportMetric(float64(durations[len(durations)*99/100].Nanoseconds())/1e3, "p99-µs")
}

// BenchmarkParseInput compares ways to turn the input JSON into the
// ast.Value that EvalParsedInput takes: ParseInput (json.Valid, then a
// fastjson tree converted directly), util.UnmarshalJSON followed by
// ast.InterfaceToValue, and ast.ValueFromReader.
func BenchmarkParseInput(b *testing.B) {
	in := []byte(benchInput)
	b.Run("ParseInput", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseInput(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("UnmarshalJSON+InterfaceToValue", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var x any
			if err := util.UnmarshalJSON(in, &x); err != nil {
				b.Fatal(err)
			}
			if _, err := ast.InterfaceToValue(x); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ValueFromReader", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ast.ValueFromReader(bytes.NewReader(in)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecideEval measures the evaluation alone, on a parsed input.
func BenchmarkDecideEval(b *testing.B) {
	ctx := context.Background()
	s, err := Compile(ctx, Default())
	if err != nil {
		b.Fatal(err)
	}
	v, err := ParseInput([]byte(benchInput))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.DecideValue(ctx, v); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInbound measures the keyword mapping of one inbound reply.
func BenchmarkInbound(b *testing.B) {
	ctx := context.Background()
	s, err := Compile(ctx, Default())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := s.Inbound(ctx, " Stop  All "); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile measures compiling the default set and preparing its
// queries, which publishing and a cold Replay pay once per set.
func BenchmarkCompile(b *testing.B) {
	ctx := context.Background()
	files := Default()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(ctx, files); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideParallel measures Decide from GOMAXPROCS goroutines, as the
// server runs it.
func BenchmarkDecideParallel(b *testing.B) {
	ctx := context.Background()
	s, err := Compile(ctx, Default())
	if err != nil {
		b.Fatal(err)
	}
	in := []byte(benchInput)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Decide(ctx, in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkInputDocument measures building the input document the ways the
// ledger can: the AST value directly, its JSON for the record, and the JSON
// parsed back (what evaluating recorded bytes costs).
func BenchmarkInputDocument(b *testing.B) {
	b.Run("Value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			benchDocument.Value()
		}
	})
	b.Run("JSON", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			AppendJSON(nil, benchDocument.Value())
		}
	})
	b.Run("ParseInput", func(b *testing.B) {
		in := AppendJSON(nil, benchDocument.Value())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ParseInput(in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEvaluatorFloor measures what OPA's evaluator costs here, apart
// from the default policy, to show where BenchmarkDecide's time goes:
//
//   - empty: a query of one constant rule, the fixed cost of an evaluation;
//   - allow-path: the conditions an ordinary marketing WhatsApp send must
//     pass (consent, refresh, double opt-in, provider region, quiet hours,
//     breaches), 20 expressions in one rule body, without reasons and
//     without the rules that name the failures. No policy that checks what
//     the default one checks can evaluate faster than this.
//
// Both read benchInput, already parsed, and report the median and the
// 99th percentile.
func BenchmarkEvaluatorFloor(b *testing.B) {
	for _, tc := range []struct{ name, module string }{
		{"empty", "package floor\np := true"},
		{"allow-path", `package floor
p if {
	now := time.parse_rfc3339_ns(input.now)
	r := input.request
	r.channel != ""
	r.purpose != ""
	r.channel == "whatsapp"
	not r.service_window_open == true
	c := input.subject.consents.whatsapp[r.purpose]
	c.status == "granted"
	time.parse_rfc3339_ns(c.granted_at) >= 0
	c.double_opt_in == true
	r.purpose in ["marketing"]
	cutoff := now - (730 * 86400000000000)
	time.parse_rfc3339_ns(object.get(c, "last_allowed_send_at", c.granted_at)) >= cutoff
	upper(r.provider.region) in ["EU", "EEA"]
	q := {"start": "22:00", "end": "08:00"}
	not {"FR": 1, "US": 2}[input.subject.country]
	t := time.format([now, r.subject_timezone, "15:04"])
	t >= q.end
	t < q.start
	every b in input.breaches { not "whatsapp" in b.channels }
}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			ctx := context.Background()
			pq, err := rego.New(rego.Query("data.floor.p"), rego.Module("floor.rego", tc.module),
				rego.SetRegoVersion(ast.RegoV1), rego.StrictBuiltinErrors(true)).PrepareForEval(ctx)
			if err != nil {
				b.Fatal(err)
			}
			in, err := ParseInput([]byte(benchInput))
			if err != nil {
				b.Fatal(err)
			}
			eval := func() {
				rs, err := pq.Eval(ctx, rego.EvalParsedInput(in), rego.EvalExternalCancel(neverCancelled), rego.EvalMetrics(metrics.NoOp()))
				if err != nil || len(rs) != 1 || rs[0].Expressions[0].Value != true {
					b.Fatalf("p = %v, %v; want true", rs, err)
				}
			}
			eval()
			timed(b, eval)
		})
	}
}
