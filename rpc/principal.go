package rpc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"connectrpc.com/connect"
)

// Roles (README.md: The API).
const (
	RoleSender  = "sender"  // consent writes, Decide, inbound
	RoleAuditor = "auditor" // read the log, evidence
	RoleLegal   = "legal"   // policies
	RoleBreach  = "breach"  // breach events
	RoleAdmin   = "admin"   // everything, erasure, backup
)

// Principal is an authenticated caller.
type Principal struct {
	Name string
	Role string
	// TokenSHA256 is the hex SHA-256 of the principal's bearer token.
	TokenSHA256 string
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the caller of ctx; without authentication it is the
// principal "local" with the admin role.
func PrincipalFrom(ctx context.Context) Principal {
	if p, ok := ctx.Value(principalKey{}).(Principal); ok {
		return p
	}
	return Principal{Name: "local", Role: RoleAdmin}
}

// procedureRoles names the roles allowed to call each procedure besides admin.
var procedureRoles = map[string][]string{
	"/consentledger.v1.ConsentService/RecordOptIn":                {RoleSender},
	"/consentledger.v1.ConsentService/ConfirmOptIn":               {RoleSender},
	"/consentledger.v1.ConsentService/RecordOptOut":               {RoleSender},
	"/consentledger.v1.ConsentService/HandleInbound":              {RoleSender},
	"/consentledger.v1.ConsentService/GetConsent":                 {RoleSender, RoleAuditor},
	"/consentledger.v1.ConsentService/GetTimeline":                {RoleSender, RoleAuditor},
	"/consentledger.v1.ConsentService/ListReviews":                {RoleSender, RoleAuditor, RoleLegal},
	"/consentledger.v1.ConsentService/EraseSubject":               {},
	"/consentledger.v1.SendService/Decide":                        {RoleSender},
	"/consentledger.v1.SendService/DecideBatch":                   {RoleSender},
	"/consentledger.v1.BreachService/ReportBreach":                {RoleBreach},
	"/consentledger.v1.BreachService/RecordAuthorityNotification": {RoleBreach},
	"/consentledger.v1.BreachService/RecordSubjectNotification":   {RoleBreach},
	"/consentledger.v1.BreachService/CloseBreach":                 {RoleBreach},
	"/consentledger.v1.BreachService/ListBreaches":                {RoleBreach, RoleAuditor, RoleLegal},
	"/consentledger.v1.PolicyService/PublishPolicy":               {RoleLegal},
	"/consentledger.v1.PolicyService/GetActivePolicy":             {RoleLegal, RoleAuditor, RoleSender},
	"/consentledger.v1.PolicyService/DryRun":                      {RoleLegal},
	"/consentledger.v1.PolicyService/ImpactReport":                {RoleLegal},
	"/consentledger.v1.LogService/GetDecisionStats":               {RoleAuditor, RoleLegal},
	"/consentledger.v1.LogService/GetCheckpoint":                  {RoleAuditor, RoleSender, RoleLegal, RoleBreach},
	"/consentledger.v1.LogService/GetEntries":                     {RoleAuditor},
	"/consentledger.v1.LogService/GetInclusionProof":              {RoleAuditor},
	"/consentledger.v1.LogService/GetConsistencyProof":            {RoleAuditor},
	"/consentledger.v1.LogService/GetEvidence":                    {RoleAuditor},
	"/consentledger.v1.LogService/WatchEntries":                   {RoleAuditor},
	"/consentledger.v1.LogService/ListCheckpoints":                {RoleAuditor},
	"/consentledger.v1.NoticeService/PublishNotice":               {RoleLegal},
	"/consentledger.v1.NoticeService/ListNotices":                 {RoleLegal, RoleAuditor, RoleSender},
	"/consentledger.v1.NoticeService/GetNotice":                   {RoleLegal, RoleAuditor, RoleSender},
	"/consentledger.v1.BreachService/AssessBreach":                {RoleBreach},
	"/consentledger.v1.BreachService/CompleteStep":                {RoleBreach},
	"/consentledger.v1.BreachService/PublishPlan":                 {RoleLegal},
	"/consentledger.v1.BreachService/GetBreach":                   {RoleBreach, RoleAuditor, RoleLegal},
	"/consentledger.v1.ReportService/ExportConsents":              {RoleAuditor},
}

// Allowed reports whether role may call procedure. Procedures this package
// does not know (health, reflection) are open to every authenticated caller.
func Allowed(role, procedure string) bool {
	if role == RoleAdmin {
		return true
	}
	roles, ok := procedureRoles[procedure]
	if !ok {
		return !strings.HasPrefix(procedure, "/consentledger.")
	}
	for _, r := range roles {
		if r == role {
			return true
		}
	}
	return false
}

// ValidRole reports whether r is one of the roles.
func ValidRole(r string) bool {
	switch r {
	case RoleSender, RoleAuditor, RoleLegal, RoleBreach, RoleAdmin:
		return true
	}
	return false
}

// Authenticator resolves bearer tokens to principals.
type Authenticator struct {
	byHash map[[32]byte]Principal
}

// NewAuthenticator checks the principals (unique names, valid roles, 64-hex
// token hashes) and returns an Authenticator.
func NewAuthenticator(ps []Principal) (*Authenticator, error) {
	a := &Authenticator{byHash: map[[32]byte]Principal{}}
	names := map[string]bool{}
	for i, p := range ps {
		if p.Name == "" || names[p.Name] {
			return nil, fmt.Errorf("principals[%d]: name %q is empty or used twice", i, p.Name)
		}
		names[p.Name] = true
		if !ValidRole(p.Role) {
			return nil, fmt.Errorf("principals[%d] (%s): role %q is not one of sender, auditor, legal, breach, admin", i, p.Name, p.Role)
		}
		h, err := hex.DecodeString(p.TokenSHA256)
		if err != nil || len(h) != 32 {
			return nil, fmt.Errorf("principals[%d] (%s): token_sha256 must be 64 hex digits (the SHA-256 of the token, e.g. printf %%s TOKEN | sha256sum)", i, p.Name)
		}
		a.byHash[[32]byte(h)] = p
	}
	return a, nil
}

// Authenticate returns the principal whose token is presented in an
// "Authorization: Bearer TOKEN" header value.
func (a *Authenticator) Authenticate(authorization string) (Principal, error) {
	token, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || token == "" {
		return Principal{}, errors.New("missing bearer token: send the header 'Authorization: Bearer TOKEN'")
	}
	h := sha256.Sum256([]byte(token))
	for k, p := range a.byHash { // constant time per candidate
		if subtle.ConstantTimeCompare(k[:], h[:]) == 1 {
			return p, nil
		}
	}
	return Principal{}, errors.New("the bearer token is not known to this server")
}

// ByName returns the principal called name.
func (a *Authenticator) ByName(name string) (Principal, bool) {
	for _, p := range a.byHash {
		if p.Name == name {
			return p, true
		}
	}
	return Principal{}, false
}

type inProcessKey struct{}

// WithInProcessCaller returns ctx marking a call made inside this process
// by a component that authenticated p itself (the console, from its signed
// session cookie). The auth interceptor then takes p instead of a bearer
// token and still authorises p's role for the procedure. A request from the
// network cannot carry the mark: context values do not cross the wire.
func WithInProcessCaller(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, inProcessKey{}, p)
}

// NewAuthInterceptor authenticates every call with a, authorises it by role
// and puts the principal in the context.
func NewAuthInterceptor(a *Authenticator) connect.Interceptor {
	return &authInterceptor{a: a}
}

type authInterceptor struct{ a *Authenticator }

func (i *authInterceptor) check(ctx context.Context, procedure, authorization string) (context.Context, error) {
	p, ok := ctx.Value(inProcessKey{}).(Principal)
	if !ok {
		var err error
		if p, err = i.a.Authenticate(authorization); err != nil {
			return nil, connect.NewError(connect.CodeUnauthenticated, err)
		}
	}
	if !Allowed(p.Role, procedure) {
		return nil, connect.NewError(connect.CodePermissionDenied, fmt.Errorf("principal %q (role %s) may not call %s", p.Name, p.Role, procedure))
	}
	return WithPrincipal(ctx, p), nil
}

func (i *authInterceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := i.check(ctx, req.Spec().Procedure, req.Header().Get("Authorization"))
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (i *authInterceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (i *authInterceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := i.check(ctx, conn.Spec().Procedure, conn.RequestHeader().Get("Authorization"))
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
