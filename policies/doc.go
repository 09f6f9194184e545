// Package policies compiles, tests and evaluates the Rego policy sets that
// decide every send, following the embedding model of OPA's v1/rego package:
// prepare once, evaluate many.
//
// A policy set is a flat list of [File]s: Rego v1 modules (*.rego), their
// tests (*_test.rego) and one data.json holding every threshold and switch
// under {"consentledger": {"config": {...}}}. The set shipped with the ledger
// is [Default]; legal teams edit a copy in a directory read by [LoadDir].
//
// A set must define two documents:
//
//   - data.consentledger.send.decision, the send decision
//     {"allow": bool, "reasons": [string]}, evaluated by [Set.Decide] over
//     the input document described in README.md;
//   - data.consentledger.inbound.action and .keyword, the meaning of an
//     inbound reply such as "STOP", evaluated by [Set.Inbound].
//
// It may define data.consentledger.inbound.result, which adds the scope of
// an opt-out (a channel's withdrawal or an objection to all marketing), the
// purposes withdrawn, the help reply and the time allowed for a review;
// [Set.InboundMessage] reads it, and falls back to the behaviour of sets
// published before it existed.
//
// Publishing a set goes through [Check]: strict compilation ([Compile]), the
// set's own tests ([Set.Test], the same tests `opa test` runs) and its
// [Digest]. Only a set that passes all three is handed to [Engine.Swap],
// which activates it atomically. Policies must be deterministic so that
// auditors can re-evaluate a recorded input with the recorded policy
// ([Replay]): the compiler rejects non-deterministic built-ins such as
// time.now_ns, http.send and rand.intn, and the evaluation clock is the
// input's "now".
package policies
