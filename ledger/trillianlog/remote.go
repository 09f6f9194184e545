package trillianlog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/go-sql-driver/mysql"
	"github.com/google/trillian"
	"github.com/google/trillian/types"
	"google.golang.org/grpc/codes"

	"github.com/consentledger/consentledger/ledger/remote"
)

// AddLeaves adds leaves at first, first+1, … with one AddSequencedLeaves
// call. Trillian answers OK with a status per leaf and keeps the leaves
// that did not conflict, so any per-leaf status other than OK is an error
// that the caller must treat as fatal (another writer, or a re-sent batch).
func (l *Log) AddLeaves(ctx context.Context, first uint64, leaves [][]byte) error {
	req := &trillian.AddSequencedLeavesRequest{LogId: l.cfg.Tree, Leaves: make([]*trillian.LogLeaf, len(leaves))}
	for i, v := range leaves {
		req.Leaves[i] = &trillian.LogLeaf{LeafValue: v, LeafIndex: int64(first) + int64(i)}
	}
	resp, err := l.log.AddSequencedLeaves(ctx, req)
	if err != nil {
		return unreachable(l.cfg.Trillian, "add leaves", err)
	}
	if len(resp.Results) != len(leaves) {
		return fmt.Errorf("the Trillian server answered %d leaf results for %d leaves", len(resp.Results), len(leaves))
	}
	var refused []string
	for i, r := range resp.Results {
		if c := r.GetStatus().GetCode(); c != int32(codes.OK) {
			refused = append(refused, fmt.Sprintf("index %d: %s %s", first+uint64(i), codes.Code(c), r.GetStatus().GetMessage()))
		}
	}
	if len(refused) > 0 {
		return fmt.Errorf("the Trillian server refused %d of %d leaves (another writer on the tree, or a re-sent batch): %s", len(refused), len(leaves), strings.Join(refused[:min(len(refused), 3)], "; "))
	}
	return nil
}

// Integrated returns the tree's integrated size and root.
func (l *Log) Integrated(ctx context.Context) (uint64, []byte, error) {
	resp, err := l.log.GetLatestSignedLogRoot(ctx, &trillian.GetLatestSignedLogRootRequest{LogId: l.cfg.Tree})
	if err != nil {
		return 0, nil, unreachable(l.cfg.Trillian, "read the tree's root", err)
	}
	var root types.LogRootV1
	if err := root.UnmarshalBinary(resp.GetSignedLogRoot().GetLogRoot()); err != nil {
		return 0, nil, fmt.Errorf("the Trillian server's log root cannot be read: %w", err)
	}
	return root.TreeSize, root.RootHash, nil
}

// Leaves returns up to count committed leaves from start.
func (l *Log) Leaves(ctx context.Context, start uint64, count int) ([][]byte, error) {
	resp, err := l.log.GetLeavesByRange(ctx, &trillian.GetLeavesByRangeRequest{LogId: l.cfg.Tree, StartIndex: int64(start), Count: int64(count)})
	if err != nil {
		return nil, unreachable(l.cfg.Trillian, fmt.Sprintf("read leaves from %d", start), err)
	}
	out := make([][]byte, len(resp.Leaves))
	for i, leaf := range resp.Leaves {
		if leaf.LeafIndex != int64(start)+int64(i) {
			return nil, fmt.Errorf("the Trillian server returned leaf %d where %d was expected", leaf.LeafIndex, int64(start)+int64(i))
		}
		out[i] = leaf.LeafValue
	}
	return out, nil
}

// sqlChunk bounds the rows of one statement.
const sqlChunk = 500

// PutSubjects stores subject-table rows.
func (l *Log) PutSubjects(ctx context.Context, rows []remote.SubjectRow) error {
	for start := 0; start < len(rows); start += sqlChunk {
		chunk := rows[start:min(start+sqlChunk, len(rows))]
		q := "INSERT INTO consentledger_subjects (tree_id, table_key, row_value) VALUES " +
			strings.TrimSuffix(strings.Repeat("(?, ?, ?), ", len(chunk)), ", ") +
			" ON DUPLICATE KEY UPDATE row_value = VALUES(row_value)"
		args := make([]any, 0, 3*len(chunk))
		for _, r := range chunk {
			args = append(args, l.cfg.Tree, r.Key, r.Value)
		}
		if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("store subject rows in %s: %w", redact(l.cfg.SQL), err)
		}
	}
	return nil
}

// DeleteSubjects deletes subject-table rows.
func (l *Log) DeleteSubjects(ctx context.Context, keys [][]byte) error {
	for start := 0; start < len(keys); start += sqlChunk {
		chunk := keys[start:min(start+sqlChunk, len(keys))]
		q := "DELETE FROM consentledger_subjects WHERE tree_id = ? AND table_key IN (" +
			strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ") + ")"
		args := []any{l.cfg.Tree}
		for _, k := range chunk {
			args = append(args, k)
		}
		if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
			return fmt.Errorf("delete subject rows in %s: %w", redact(l.cfg.SQL), err)
		}
	}
	return nil
}

// Subject returns the subject-table row at key.
func (l *Log) Subject(ctx context.Context, key []byte) ([]byte, bool, error) {
	var v []byte
	err := l.db.QueryRowContext(ctx, "SELECT row_value FROM consentledger_subjects WHERE tree_id = ? AND table_key = ?", l.cfg.Tree, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read the subject table in %s: %w", redact(l.cfg.SQL), err)
	}
	return v, true, nil
}

// Subjects calls fn for every subject-table row of the tree.
func (l *Log) Subjects(ctx context.Context, fn func(remote.SubjectRow) error) error {
	rows, err := l.db.QueryContext(ctx, "SELECT table_key, row_value FROM consentledger_subjects WHERE tree_id = ?", l.cfg.Tree)
	if err != nil {
		return fmt.Errorf("read the subject table in %s: %w", redact(l.cfg.SQL), err)
	}
	defer rows.Close()
	for rows.Next() {
		var r remote.SubjectRow
		if err := rows.Scan(&r.Key, &r.Value); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rows.Err()
}

// errDuplicate is MySQL's "duplicate entry for key".
const errDuplicate = 1062

// PutCheckpoint stores a signed checkpoint unless one of that size exists,
// and returns the one stored.
func (l *Log) PutCheckpoint(ctx context.Context, size uint64, note []byte) ([]byte, error) {
	_, err := l.db.ExecContext(ctx, "INSERT INTO consentledger_checkpoints (tree_id, size, note) VALUES (?, ?, ?)", l.cfg.Tree, size, note)
	var me *mysql.MySQLError
	switch {
	case err == nil:
		return note, nil
	case errors.As(err, &me) && me.Number == errDuplicate:
		var stored []byte
		if err := l.db.QueryRowContext(ctx, "SELECT note FROM consentledger_checkpoints WHERE tree_id = ? AND size = ?", l.cfg.Tree, size).Scan(&stored); err != nil {
			return nil, fmt.Errorf("read the checkpoint of size %d: %w", size, err)
		}
		if !bytes.Equal(stored, note) {
			return stored, nil
		}
		return note, nil
	default:
		return nil, fmt.Errorf("store the checkpoint of size %d in %s: %w", size, redact(l.cfg.SQL), err)
	}
}

// Checkpoints calls fn for every stored checkpoint larger than after.
func (l *Log) Checkpoints(ctx context.Context, after uint64, fn func(size uint64, note []byte) error) error {
	rows, err := l.db.QueryContext(ctx, "SELECT size, note FROM consentledger_checkpoints WHERE tree_id = ? AND size > ? ORDER BY size", l.cfg.Tree, after)
	if err != nil {
		return fmt.Errorf("read checkpoints in %s: %w", redact(l.cfg.SQL), err)
	}
	defer rows.Close()
	for rows.Next() {
		var size uint64
		var note []byte
		if err := rows.Scan(&size, &note); err != nil {
			return err
		}
		if err := fn(size, note); err != nil {
			return err
		}
	}
	return rows.Err()
}
