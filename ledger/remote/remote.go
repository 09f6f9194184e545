// Package remote defines what the ledger needs from a distributed log that
// is the source of truth for its entries (Trillian: package trillianlog),
// and where each piece of the ledger lives when it runs on one.
package remote

import "context"

// Log is the log's source of truth when the ledger runs on a distributed
// log (Trillian: package trillianlog) rather than on its local store alone.
//
// What lives where, and why:
//   - The entries live in the remote log. A batch is acknowledged only after
//     AddLeaves accepted every one of its entries, so an acknowledged entry
//     survives the loss of this machine.
//   - The subject table (HMAC of an identifier → salt, subject_id) is
//     personal data that must stay erasable, so it never enters a log: it
//     lives in the remote's SQL database, and erasure deletes its row there.
//   - Signed checkpoints live in the remote's SQL database, so every node
//     serves the same ones and a rebuilt node keeps them.
//   - The local store keeps everything else — entries, tiles, the state
//     index — as a cache derived from the remote's leaves: extended from them
//     at every start and rebuilt from them when the data directory is new.
type Log interface {
	// AddLeaves durably adds leaves[i] at index first+i. It returns nil
	// only when the remote accepted every leaf; any other outcome is an
	// error, after which the caller must assume some leaves may be stored.
	AddLeaves(ctx context.Context, first uint64, leaves [][]byte) error
	// Integrated returns the size and RFC 6962 root of the remote tree as
	// far as the remote has integrated it (committed leaves may lie beyond).
	Integrated(ctx context.Context) (size uint64, root []byte, err error)
	// Leaves returns up to count committed leaves from start, in order. It
	// returns none when start is at or past the integrated size; below it,
	// it may return committed leaves past the integrated size.
	Leaves(ctx context.Context, start uint64, count int) ([][]byte, error)
	// PutSubjects stores subject-table rows (key → value), replacing any.
	PutSubjects(ctx context.Context, rows []SubjectRow) error
	// DeleteSubjects deletes subject-table rows; absent keys are no error.
	DeleteSubjects(ctx context.Context, keys [][]byte) error
	// Subject returns the subject-table row at key, if there is one.
	Subject(ctx context.Context, key []byte) (value []byte, ok bool, err error)
	// Subjects calls fn for every subject-table row.
	Subjects(ctx context.Context, fn func(SubjectRow) error) error
	// PutCheckpoint stores the signed checkpoint of size unless one of that
	// size is already stored; it returns the note stored for size (note, or
	// the one stored before).
	PutCheckpoint(ctx context.Context, size uint64, note []byte) (stored []byte, err error)
	// Checkpoints calls fn for every stored checkpoint larger than after,
	// in order of size.
	Checkpoints(ctx context.Context, after uint64, fn func(size uint64, note []byte) error) error
}

// SubjectRow is one row of the erasable subject table.
type SubjectRow struct {
	// Key is the HMAC of the subject's identifier under subject.key.
	Key []byte
	// Value is salt(32) followed by subject_id.
	Value []byte
}
