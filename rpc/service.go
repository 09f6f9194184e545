package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger"
	"github.com/consentledger/consentledger/policies"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"github.com/consentledger/consentledger/proto/consentledger/v1/consentledgerv1connect"
)

// Options configures a Service. The zero value of each field means its
// documented default.
type Options struct {
	// Ledger is the log; required.
	Ledger *ledger.Ledger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// OnDecision, if set, is called for every send decision recorded (for metrics).
	OnDecision func(allow bool, reasons []string)
	// DataDir is the ledger's data directory, for backups; empty disables Backup.
	DataDir string
	// Contact fills the policy's help reply to an inbound HELP (sender
	// identity, support, how to opt out, privacy notice, DPO); empty fields
	// are left out of the reply.
	Contact policies.Contact
	// Witnesses, if set, reports the configured witnesses (GetCheckpoint shows them).
	Witnesses func() []WitnessInfo
	// WitnessQuorum is the operator's witness quorum, shown by GetCheckpoint.
	WitnessQuorum int
	// MaxBackdate bounds how long before now an event may be dated
	// (occurred_at, received_at, detected_at); 0 means DefaultMaxBackdate.
	MaxBackdate time.Duration
	// DraftTimeout bounds DryRun, ImpactReport and the test run of
	// PublishPolicy; 0 means DefaultDraftTimeout.
	DraftTimeout time.Duration
	// Org is the controller, DPO or contact point and authority.
	Org Org
	// RequirePublishedNotice: whether an opt-in must name a published
	// notice; nil means true once any notice is published.
	RequirePublishedNotice *bool
	// MinIndexWait bounds how long a read with min_index waits for this node
	// to apply that entry; 0 means DefaultMinIndexWait.
	MinIndexWait time.Duration
	// RefuseWrites, if set, is asked before every append: a non-nil error
	// refuses the write unappended and is answered as the ledger's own
	// refusal would be (a *ledger.NotLeaderError: unavailable with the
	// leader's URL). On a standby the ledger refuses writes itself, so
	// servers leave it nil; tests set it to stand in for a standby node.
	RefuseWrites func() error
}

var errNoDataDir = errors.New("this server has no data directory to back up")

// Service holds what the handlers share: the ledger, the active policy and
// a cache of open breaches.
type Service struct {
	l            *ledger.Ledger
	now          func() time.Time
	log          *slog.Logger
	onDec        func(allow bool, reasons []string)
	dataDir      string
	contact      policies.Contact
	maxBackdate  time.Duration
	draftTimeout time.Duration
	drafts       chan struct{} // semaphore of running draft evaluations
	active       atomic.Pointer[activePolicy]

	witnesses func() []WitnessInfo
	quorum    int
	org       Org

	requirePublished *bool

	minIndexWait time.Duration
	refuseWrites func() error

	publishMu sync.Mutex // publications are activated in log order
	reloadMu  sync.Mutex // one reload of a policy published through another node at a time

	breachMu sync.Mutex
	open     atomic.Pointer[openBreaches] // open breaches, for policy input
}

// activePolicy is the compiled policy in force and the entry that published it.
type activePolicy struct {
	set *policies.Set
	ref *pb.EntryRef
}

// New returns a Service on opts.Ledger. It activates the policy the log
// names; on an empty log it publishes the embedded default policy as the
// first entry.
func New(ctx context.Context, opts Options) (*Service, error) {
	if opts.Ledger == nil {
		return nil, errors.New("rpc: Options.Ledger is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBackdate <= 0 {
		opts.MaxBackdate = DefaultMaxBackdate
	}
	if opts.DraftTimeout <= 0 {
		opts.DraftTimeout = DefaultDraftTimeout
	}
	if opts.MinIndexWait <= 0 {
		opts.MinIndexWait = DefaultMinIndexWait
	}
	s := &Service{l: opts.Ledger, now: opts.Now, log: opts.Logger, onDec: opts.OnDecision, dataDir: opts.DataDir, contact: opts.Contact,
		witnesses: opts.Witnesses, quorum: opts.WitnessQuorum,
		maxBackdate: opts.MaxBackdate, draftTimeout: opts.DraftTimeout, drafts: make(chan struct{}, maxDraftEvaluations),
		org: opts.Org, requirePublished: opts.RequirePublishedNotice,
		minIndexWait: opts.MinIndexWait, refuseWrites: opts.RefuseWrites}
	if err := s.refreshBreaches(ctx); err != nil {
		return nil, err
	}
	ref := s.l.ActivePolicyRef()
	switch {
	case ref == nil && s.l.IsStandby():
		// The leader publishes the default policy; this node loads it
		// when the entry arrives (Active).
		set, err := policies.Compile(ctx, policies.Default())
		if err != nil {
			return nil, err
		}
		s.active.Store(&activePolicy{set: set, ref: nil})
		return s, nil
	case ref == nil:
		if _, _, err := s.Publish(WithPrincipal(ctx, Principal{Name: "system", Role: RoleAdmin}), policies.Default(), "embedded default policy, published on first start", ""); err != nil {
			return nil, fmt.Errorf("publish the default policy: %w", err)
		}
		return s, nil
	}
	if err := s.loadActive(ctx, ref); err != nil {
		return nil, err
	}
	return s, nil
}

// entryAt reads and decodes entry index; errors come as Connect errors.
func (s *Service) entryAt(ctx context.Context, index uint64) (*pb.Entry, error) {
	data, err := s.l.Entry(ctx, index)
	if err != nil {
		return nil, toConnect(err)
	}
	e, err := ledger.DecodeEntry(data)
	if err != nil {
		return nil, toConnect(err)
	}
	return e, nil
}

// loadActive compiles the policy of the PolicyPublished entry ref and
// makes it the active one.
func (s *Service) loadActive(ctx context.Context, ref *pb.EntryRef) error {
	data, err := s.l.Entry(ctx, ref.Index)
	if err != nil {
		return err
	}
	e, err := ledger.DecodeEntry(data)
	if err != nil {
		return err
	}
	set, err := policies.Compile(ctx, policyFiles(e.GetPolicyPublished().GetFiles()))
	if err != nil {
		return fmt.Errorf("compile the active policy (entry %d): %w", ref.Index, err)
	}
	s.active.Store(&activePolicy{set: set, ref: ref})
	return nil
}

// Active returns the policy in force and its PolicyPublished entry. When
// the ledger's active policy is another one — published through another
// node (standby nodes) — it compiles and activates that one first.
func (s *Service) Active() (*policies.Set, *pb.EntryRef) {
	a := s.active.Load()
	if ref := s.l.ActivePolicyRef(); ref != nil && (a.ref == nil || ref.Index != a.ref.Index) {
		s.reloadMu.Lock()
		if a = s.active.Load(); a.ref == nil || ref.Index != a.ref.Index {
			if err := s.loadActive(context.Background(), ref); err != nil {
				s.log.Error("load the policy published through another node; deciding with the previous one", "entry", ref.Index, "err", err)
			}
		}
		s.reloadMu.Unlock()
		a = s.active.Load()
	}
	return a.set, a.ref
}

// Publish compiles files, runs their tests, records a PolicyPublished entry
// and activates the policy. A policy that fails changes nothing. If the
// active policy already has the same digest, nothing is appended and its
// entry is returned.
func (s *Service) Publish(ctx context.Context, files []policies.File, note, idemKey string) (*pb.EntryRef, string, error) {
	return s.publish(ctx, ctx, files, note, idemKey)
}

// publish is Publish with the compilation and test run bounded by checkCtx.
func (s *Service) publish(ctx, checkCtx context.Context, files []policies.File, note, idemKey string) (*pb.EntryRef, string, error) {
	set, err := policies.Check(checkCtx, files)
	if err != nil {
		return nil, "", err
	}
	s.publishMu.Lock()
	defer s.publishMu.Unlock()
	if a := s.active.Load(); a != nil && a.set.Digest() == set.Digest() && idemKey == "" {
		return a.ref, a.set.Digest(), nil
	}
	var pf []*pb.PolicyFile
	for _, f := range set.Files() {
		pf = append(pf, &pb.PolicyFile{Name: f.Name, Content: f.Content})
	}
	e := &pb.Entry{
		Actor:          PrincipalFrom(ctx).Name,
		IdempotencyKey: idemKey,
		Event:          &pb.Entry_PolicyPublished{PolicyPublished: &pb.PolicyPublished{Files: pf, Digest: set.Digest(), Note: note}},
	}
	rcpt, err := s.appendOne(ctx, &ledger.Request{Entry: e, Fingerprint: s.fingerprint(idemKey, &pb.PublishPolicyRequest{Files: pf, Note: note})})
	if err != nil {
		return nil, "", err
	}
	if rcpt.Duplicate {
		st, err := s.l.ActivePolicy(ctx)
		if err != nil {
			return nil, "", err
		}
		return rcpt.Ref(), st.Digest, nil
	}
	s.active.Store(&activePolicy{set: set, ref: rcpt.Ref()})
	s.log.Info("policy published", "entry", rcpt.Index, "digest", set.Digest(), "actor", e.Actor)
	return rcpt.Ref(), set.Digest(), nil
}

// fingerprint is the keyed digest of a request for idempotency checks; a
// request without an idempotency key needs none.
func (s *Service) fingerprint(key string, m proto.Message) []byte {
	if key == "" {
		return nil
	}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return s.l.Fingerprint(b)
}

// refreshBreaches reloads the open breaches the policy input lists.
func (s *Service) refreshBreaches(ctx context.Context) error {
	s.breachMu.Lock()
	defer s.breachMu.Unlock()
	open, epoch, err := s.l.OpenBreaches(ctx)
	if err != nil {
		return fmt.Errorf("read breaches: %w", err)
	}
	s.open.Store(&openBreaches{list: open, epoch: epoch})
	return nil
}

// Mount registers the services on mux with the given handler options
// (interceptors) and returns the procedure paths' service names.
func (s *Service) Mount(mux *http.ServeMux, opts ...connect.HandlerOption) []string {
	for _, h := range []func(...connect.HandlerOption) (string, http.Handler){
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewConsentServiceHandler(&consentHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewSendServiceHandler(&sendHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewBreachServiceHandler(&breachHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewPolicyServiceHandler(&policyHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewLogServiceHandler(&logHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewAdminServiceHandler(&adminHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewNoticeServiceHandler(&noticeHandler{s: s}, o...)
		},
		func(o ...connect.HandlerOption) (string, http.Handler) {
			return consentledgerv1connect.NewReportServiceHandler(&reportHandler{s: s}, o...)
		},
	} {
		path, handler := h(opts...)
		mux.Handle(path, handler)
	}
	return []string{
		consentledgerv1connect.ConsentServiceName,
		consentledgerv1connect.SendServiceName,
		consentledgerv1connect.BreachServiceName,
		consentledgerv1connect.PolicyServiceName,
		consentledgerv1connect.LogServiceName,
		consentledgerv1connect.AdminServiceName,
		consentledgerv1connect.NoticeServiceName,
		consentledgerv1connect.ReportServiceName,
	}
}

func policyFiles(pf []*pb.PolicyFile) []policies.File {
	out := make([]policies.File, len(pf))
	for i, f := range pf {
		out[i] = policies.File{Name: f.Name, Content: f.Content}
	}
	return out
}
