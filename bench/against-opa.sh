#!/usr/bin/env bash
# Side-by-side benchmark: consentledger's Decide and DecideBatch against OPA's
# own server evaluating the same policy set on the same input.
#
#   bench/against-opa.sh [--rounds 3] [--duration 10s] [--concurrency 64] [--batch 100]
#
# It builds consentledger, starts `consentledger serve` on a temporary data
# directory and `go tool opa run --server` (the OPA version in go.mod) with
# policies/ (rules and data.json), nothing logged. Each round runs, one after
# the other with the same load generator (`consentledger bench`) at the same
# concurrency: OPA queried with an input our server recorded, our Decide
# (every decision evaluated and durably recorded), our DecideBatch. It
# prints each run's line, the medians and the ratios against OPA. Run it on
# a quiet machine; compare only figures from one run.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN="${GOTOOLCHAIN:-go1.27.3}"

rounds=3 duration=10s conc=64 batch=100
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --concurrency) conc=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    *) echo "usage: bench/against-opa.sh [--rounds 3] [--duration 10s] [--concurrency 64] [--batch 100]" >&2; exit 2 ;;
  esac
done

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 1 300); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }

echo "building…" >&2
go build -o "$work/consentledger" ./cmd/consentledger
go build -o "$work/opa" github.com/open-policy-agent/opa
opa_version=$("$work/opa" version | sed -n 's/^Version: //p')

cl_port=$(port) opa_port=$(port)
"$work/consentledger" serve --data "$work/data" --addr "127.0.0.1:$cl_port" >"$work/serve.log" 2>&1 &
pids+=($!)
"$work/opa" run --server --addr "127.0.0.1:$opa_port" --log-level error --ignore='*_test.rego' policies/ >"$work/opa.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$opa_port/health"
for _ in $(seq 1 300); do (exec 3<>"/dev/tcp/127.0.0.1/$cl_port") 2>/dev/null && break; sleep 0.1; done

cl="http://127.0.0.1:$cl_port"
bench() { { "$work/consentledger" bench --server "$cl" --concurrency "$conc" --duration "$duration" "$@" 2>/dev/null || true; } | tail -n 1; }

echo "OPA $opa_version; $rounds interleaved rounds of $duration at concurrency $conc; batch $batch" >&2
: >"$work/opa.txt"; : >"$work/decide.txt"; : >"$work/batch.txt"
for r in $(seq 1 "$rounds"); do
  line=$(bench --opa "http://127.0.0.1:$opa_port"); echo "round $r  OPA server        $line"; echo "$line" >>"$work/opa.txt"
  line=$(bench);                                     echo "round $r  Decide            $line"; echo "$line" >>"$work/decide.txt"
  line=$(bench --batch "$batch");                    echo "round $r  DecideBatch($batch)  $line"; echo "$line" >>"$work/batch.txt"
done

# median of field: rate (decisions/s) and p99 in ms
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rate() { awk '{print $1}' "$1" | median; }
p99ms() { sed -n 's/.*p99=\([0-9.]*\)\(µs\|ms\|s\).*/\1 \2/p' "$1" | awk '{v=$1; if ($2=="µs") v/=1000; if ($2=="s") v*=1000; print v}' | median; }
opa_rate=$(rate "$work/opa.txt") dec_rate=$(rate "$work/decide.txt") bat_rate=$(rate "$work/batch.txt")
opa_p99=$(p99ms "$work/opa.txt") dec_p99=$(p99ms "$work/decide.txt") bat_p99=$(p99ms "$work/batch.txt")
echo
echo "medians of $rounds rounds (decisions/s, p99 per call):"
printf '  OPA server (policy only, nothing recorded)  %8.0f/s  p99 %7.1f ms\n' "$opa_rate" "$opa_p99"
printf '  Decide (evaluated and durably recorded)     %8.0f/s  p99 %7.1f ms   ratio %.2f× OPA (target ≥ 1.3×, p99 ≤ OPA'"'"'s)\n' "$dec_rate" "$dec_p99" "$(echo "$dec_rate $opa_rate" | awk '{print $1/$2}')"
printf '  DecideBatch of %-4s                         %8.0f/s  p99 %7.1f ms   ratio %.2f× OPA (target ≥ 3×)\n' "$batch" "$bat_rate" "$bat_p99" "$(echo "$bat_rate $opa_rate" | awk '{print $1/$2}')"
