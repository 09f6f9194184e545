// Package rpc implements consentledger's Connect API (package
// consentledger.v1, README.md: The API): ConsentService, SendService, BreachService,
// PolicyService and LogService. Handlers validate each request in one place
// (errors name the field), turn it into ledger appends and policy
// evaluations, and map ledger errors to Connect codes. A rejected request
// appends nothing. Entries are built from validated fields only, never
// from request messages or bytes (ProtoCodec also discards unknown fields).
//
// On a standby node (the log on Trillian with several nodes) writes are
// refused with unavailable and a LeaderHint detail naming the leader, and
// reads take min_index, a bounded wait for the node to apply an entry
// (standby.go).
//
// Authentication and authorisation are an interceptor (NewAuthInterceptor):
// every entry's actor is the authenticated principal's name.
package rpc
