// Package ledger is consentledger's append-only log: every consent event,
// send decision, policy publication and breach event is one protobuf Entry,
// hash-chained to the one before it and a leaf of an RFC 6962 Merkle tree
// whose signed checkpoints (C2SP tlog-checkpoint, as a C2SP signed note)
// and inclusion and consistency proofs let anyone check it offline.
//
// Guarantees:
//   - Durability: Append returns only after its entry, the tree's node
//     hashes, the state index and the idempotency record are committed in
//     one synced storage transaction (group commit: concurrent appends share
//     one transaction). An acknowledged entry survives kill -9 and power loss;
//     reopening needs no replay.
//   - Order: one sequencer assigns indexes. recorded_at never decreases
//     along the log, even if the wall clock steps back. Each entry names the
//     leaf hash of the one before it (prev_hash), each consent event the
//     subject's previous consent event, each send decision the subject's
//     latest consent event when it was sequenced.
//   - A checkpoint commits to every entry below its size: an entry shown
//     with an inclusion proof to a checkpoint signed by the pinned key is
//     exactly what the ledger recorded at that index, and a consistency
//     proof shows a later checkpoint extends an earlier one. The ledger never
//     signs two roots for one size.
//   - No phone number or e-mail address is stored in an entry or a key in
//     clear: entries carry a random subject_id and a salted commitment; the
//     table that maps identifiers to them is outside the tree and erasable.
package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/storage/badgerstore"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Options configures a Ledger. The zero value means the documented defaults.
type Options struct {
	// Origin is the checkpoint origin (the log's name) for a new data
	// directory; empty means the existing key's origin, or DefaultOrigin.
	Origin string
	// MaxBatch bounds the entries committed in one transaction; 0 means 1024.
	MaxBatch int
	// CheckpointInterval is how often a new checkpoint is signed when the
	// log has grown; 0 means one second, negative disables background signing
	// (SignCheckpoint still works).
	CheckpointInterval time.Duration
	// Now is the ledger's clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational messages; nil means slog.Default().
	Logger *slog.Logger
	// CommitLinger is how long, once the committer is ready, the sequencer
	// keeps collecting appends that arrive back to back before it cuts the
	// batch, when the last batch held more than one append (so appenders
	// just acknowledged join this commit rather than wait for the next).
	// 0 means 50µs; negative disables it.
	CommitLinger time.Duration
	// SpaceDir is the directory whose file system's free space is watched
	// (see DiskReserve); Open sets it to the data directory. Empty watches
	// nothing.
	SpaceDir string
	// DiskReserve is the free space, in bytes, below which appends are
	// refused with ErrNoSpace; they resume above it plus an eighth (at least
	// 8 MiB). 0 means DefaultDiskReserve; negative disables the check.
	DiskReserve int64
	// FreeSpace reads the free bytes of dir's file system; nil means
	// [FreeSpace] (statfs). Tests replace it.
	FreeSpace func(dir string) (uint64, error)
	// SidecarPath is where a copy of the latest signed checkpoint is kept
	// outside the store (see SidecarFile); Open sets it in the data
	// directory. Empty keeps none.
	SidecarPath string
	// Remote, when set, is the log's source of truth (Trillian: see
	// package trillianlog); the store is then a cache of it. Nil means the
	// store alone holds the log.
	Remote Remote
	// Standby starts the ledger as a standby on Remote (see standby.go):
	// it refuses appends and follows the remote until Promote.
	Standby bool
	// StateCache bounds the subjects whose committed state LookupSubject
	// and SubjectState keep in memory (see statecache.go); 0 means
	// DefaultStateCache, negative keeps none (every read goes to the store).
	StateCache int
}

func (o *Options) withDefaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 1024
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.CommitLinger == 0 {
		o.CommitLinger = 50 * time.Microsecond
	}
}

// Ledger is the append-only log. Its methods are safe for concurrent use.
type Ledger struct {
	store     storage.Store
	ownsStore bool
	keys      *Keys
	origin    string
	opts      Options

	closeMu sync.RWMutex // held for reading while enqueueing; Close takes it to stop appends
	closed  bool
	queue   chan *pending
	commits chan *batch   // sequencer to committer, unbuffered
	ready   chan struct{} // the committer is ready for the next batch
	seqDone chan struct{} // closed when the sequencer has handed off its last batch
	done    chan struct{} // closed when the committer has finished
	stopBg  chan struct{}
	bg      sync.WaitGroup

	view      atomic.Pointer[treeView]
	committed atomic.Uint64 // number of the last committed batch
	handedOff atomic.Uint64 // number of the last batch handed to the committer
	finished  atomic.Uint64 // number of the last batch the committer finished (committed or failed)
	sequenced atomic.Uint64 // number of the batch holding the last sequenced append (open or handed off)

	mu     sync.Mutex
	notify chan struct{} // closed and replaced after every commit
	broken error         // set when a commit failed; the ledger then refuses all appends

	tiles tileCache
	stats struct{ batches, entries atomic.Uint64 }
	space spaceGuard

	ckptMu sync.Mutex
	latest atomic.Pointer[Checkpoint]

	remoteStats  remoteStats
	role         roleState
	activePolicy atomic.Pointer[pb.EntryRef] // see ActivePolicyRef
	states       stateCache                  // subjects' committed state (statecache.go)
}

// Open opens the ledger in the data directory dir (Badger under dir/db, keys
// beside it), creating it on first use.
func Open(dir string, opts Options) (*Ledger, error) {
	if err := checkDataDir(dir); err != nil {
		return nil, err
	}
	keys, err := LoadOrCreateKeys(dir, opts.Origin)
	if err != nil {
		return nil, err
	}
	if err := writeFormat(dir); err != nil {
		return nil, err
	}
	st, err := openStore(filepath.Join(dir, "db"))
	if err != nil {
		return nil, err
	}
	if opts.SpaceDir == "" {
		opts.SpaceDir = dir
	}
	if opts.SidecarPath == "" {
		opts.SidecarPath = filepath.Join(dir, SidecarFile)
	}
	l, err := New(st, keys, opts)
	if err != nil {
		st.Close()
		return nil, err
	}
	l.ownsStore = true
	return l, nil
}

// openStore opens the Badger store, turning a panic on damaged files into
// an error that says how to recover.
func openStore(dir string) (st *badgerstore.Store, err error) {
	defer func() {
		if r := recover(); r != nil {
			st, err = nil, fmt.Errorf("%w: the store in %s is damaged (%v): restore the data directory from a backup (consentledger restore)", ErrDataDir, dir, r)
		}
	}()
	if err := badgerstore.CheckTables(dir); err != nil {
		return nil, fmt.Errorf("%w: %v — restore the data directory from a backup (consentledger restore)", ErrDataDir, err)
	}
	st, err = badgerstore.Open(dir, badgerstore.Options{})
	if err != nil {
		return nil, fmt.Errorf("%w: %v — if files in %s were damaged or truncated, restore the data directory from a backup (consentledger restore)", ErrDataDir, err, dir)
	}
	return st, nil
}

// New returns a ledger on store, signing with keys. Close does not close the
// store.
func New(store storage.Store, keys *Keys, opts Options) (*Ledger, error) {
	opts.withDefaults()
	l := &Ledger{
		store:   store,
		keys:    keys,
		origin:  keys.Signer.Name(),
		opts:    opts,
		queue:   make(chan *pending, 4*opts.MaxBatch),
		commits: make(chan *batch),
		ready:   make(chan struct{}),
		seqDone: make(chan struct{}),
		done:    make(chan struct{}),
		stopBg:  make(chan struct{}),
		notify:  make(chan struct{}),
		tiles:   tileCache{max: 4096},
		role:    roleState{promote: make(chan promoteReq), rejoin: make(chan struct{}, 1)},
	}
	if opts.Standby {
		if opts.Remote == nil {
			return nil, errors.New("a standby needs a remote log (Trillian)")
		}
		l.role.standby.Store(true)
	}
	seq, err := l.loadSequencer(context.Background())
	if err != nil {
		return nil, err
	}
	if opts.Remote != nil {
		if err := l.catchUp(context.Background(), seq, !opts.Standby); err != nil {
			return nil, err
		}
	}
	if err := l.loadActivePolicyRef(context.Background()); err != nil {
		return nil, err
	}
	l.initSpace()
	if err := l.loadLatestCheckpoint(context.Background()); err != nil {
		return nil, err
	}
	if err := l.checkSidecar(); err != nil {
		return nil, err
	}
	go seq.run()
	go l.commitLoop()
	if _, err := l.SignCheckpoint(context.Background()); err != nil {
		l.Close()
		return nil, err
	}
	if opts.CheckpointInterval > 0 {
		l.bg.Add(1)
		go l.signLoop()
	}
	if l.space.enabled() {
		l.bg.Add(1)
		go l.spaceLoop()
	}
	return l, nil
}

// Origin returns the log's origin, the first line of its checkpoints.
func (l *Ledger) Origin() string { return l.origin }

// VerifierKey returns the note verifier key that auditors pin.
func (l *Ledger) VerifierKey() string { return l.keys.VerifierKey }

// Size returns the number of committed entries.
func (l *Ledger) Size() uint64 { return l.view.Load().size }

// Root returns the Merkle root of the committed entries.
func (l *Ledger) Root() []byte { return append([]byte(nil), l.view.Load().root...) }

// Close stops accepting appends, waits until every append already accepted
// has been committed and acknowledged, signs a last checkpoint and releases
// the store if Open opened it.
func (l *Ledger) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.queue)
	l.closeMu.Unlock()
	<-l.done
	close(l.stopBg)
	l.bg.Wait()
	var errs []error
	if l.brokenErr() == nil {
		if _, err := l.SignCheckpoint(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	if l.ownsStore {
		errs = append(errs, l.store.Close())
	}
	return errors.Join(errs...)
}

// Failure returns the storage failure that stopped the ledger from
// accepting appends (fail-stop until restart), or nil while it is healthy.
func (l *Ledger) Failure() error { return l.brokenErr() }

func (l *Ledger) brokenErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.broken
}

func (l *Ledger) setBroken(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.broken == nil && errors.Is(err, ErrLeaseLost) {
		l.broken = fmt.Errorf("%w: %w; this node stopped writing (another node may lead now) and rejoins as a standby — no acknowledged entry is lost", ErrClosed, err)
		l.opts.Logger.Error("ALARM: leader lease lost; writes stopped", "err", err)
	}
	if l.broken == nil && errors.Is(err, ErrRemote) {
		l.broken = fmt.Errorf("%w: %w; the ledger accepts no more entries: once Trillian and its database are reachable again, restart the server — it catches up, and no acknowledged entry is lost", ErrClosed, err)
		l.opts.Logger.Error("ALARM: distributed log failure; writes stopped", "err", err)
	}
	if l.broken == nil {
		l.broken = fmt.Errorf("%w: a storage write failed, so the ledger accepts no more entries; restart it (no acknowledged entry is lost): %v", ErrClosed, err)
		l.opts.Logger.Error("ledger storage failure", "err", err)
	}
}

// clearLeaseLost ends a stop for a lost lease (after a rejoin); any other
// failure stays.
func (l *Ledger) clearLeaseLost() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(l.broken, ErrLeaseLost) {
		l.broken = nil
	}
}

// changed returns a channel closed at the next commit.
func (l *Ledger) changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.notify
}

func (l *Ledger) broadcast() {
	l.mu.Lock()
	close(l.notify)
	l.notify = make(chan struct{})
	l.mu.Unlock()
}

// Stats are counters of the ledger's work since it opened.
type Stats struct {
	// Batches and Entries committed; Entries/Batches is the mean group-commit size.
	Batches, Entries uint64
}

// Stats returns the ledger's counters.
func (l *Ledger) Stats() Stats {
	return Stats{Batches: l.stats.batches.Load(), Entries: l.stats.entries.Load()}
}

// WaitForSize blocks until the log holds more than size entries, ctx ends or
// the ledger closes, and returns the size then.
func (l *Ledger) WaitForSize(ctx context.Context, size uint64) (uint64, error) {
	for {
		ch := l.changed()
		if n := l.Size(); n > size {
			return n, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return l.Size(), ctx.Err()
		case <-l.done:
			return l.Size(), ErrClosed
		}
	}
}

// Barrier waits until every append sequenced before the call is committed,
// including those still in the batch being filled (a decision refused
// because of a consent event there must see that event when it reads again).
func (l *Ledger) Barrier(ctx context.Context) error {
	target := max(l.handedOff.Load(), l.sequenced.Load())
	for {
		ch := l.changed()
		if l.committed.Load() >= target {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		case <-l.done:
			return ErrClosed
		}
	}
}

// Store returns the ledger's store (for backups).
func (l *Ledger) Store() storage.Store { return l.store }
