// Package export reads and writes consentledger's export format: a whole
// log for offline audit (`consentledger export`, `consentverify audit`).
//
// The format is a stream, so neither side holds the log in memory:
//
//	"consentledger-export v1\n"           magic line
//	uvarint(len) checkpoint               the signed checkpoint note (C2SP tlog-checkpoint)
//	uvarint(len) entry 0                  the stored bytes of each Entry, in index order,
//	uvarint(len) entry 1                  exactly as hashed (RFC 6962 leaf = SHA-256(0x00 ‖ bytes))
//	…                                     exactly as many entries as the checkpoint's size
//
// The checkpoint comes first so that a reader knows how many entries to
// expect and which root they must produce; it is not trusted until verified
// against a pinned key.
//
// Version 2 (README.md: Witnesses) adds, between the checkpoint and the entries, every
// checkpoint the log kept up to that size, each with its witness
// cosignatures, so that an audit can bound each entry's time by the first
// witnessed checkpoint that includes it:
//
//	"consentledger-export v2\n"
//	uvarint(len) checkpoint               as in v1
//	uvarint(n)                            how many kept checkpoints follow
//	uvarint(len) checkpoint … n times     each a signed note with its cosignature lines, by size
//	uvarint(len) entry 0 …                as in v1
//
// A Reader reads both versions; v1 exports carry no kept checkpoints.
package export

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic is the first line of a version 1 export; MagicV2 of version 2.
const (
	Magic   = "consentledger-export v1\n"
	MagicV2 = "consentledger-export v2\n"
)

// Limits a Reader enforces on untrusted input.
const (
	MaxCheckpointBytes = 64 << 10
	MaxEntryBytes      = 8 << 20
	// MaxCheckpoints bounds the kept checkpoints of a v2 export.
	MaxCheckpoints = 1 << 20
)

// ErrFormat is wrapped by every error about malformed export input.
var ErrFormat = errors.New("malformed export")

// Writer writes an export.
type Writer struct {
	w       *bufio.Writer
	n, want uint64
	buf     [binary.MaxVarintLen64]byte
}

// NewWriter writes the magic line and the checkpoint of size entries; the
// caller then writes exactly size entries and calls Close.
func NewWriter(w io.Writer, checkpoint []byte, size uint64) (*Writer, error) {
	ew := &Writer{w: bufio.NewWriterSize(w, 1<<20), want: size}
	if _, err := ew.w.WriteString(Magic); err != nil {
		return nil, err
	}
	if err := ew.record(checkpoint); err != nil {
		return nil, err
	}
	return ew, nil
}

// NewWriterV2 writes a version 2 export: the magic line, the checkpoint of
// size entries and the kept checkpoints (signed notes with their
// cosignatures, in order of size); the caller then writes exactly size
// entries and calls Close.
func NewWriterV2(w io.Writer, checkpoint []byte, size uint64, kept [][]byte) (*Writer, error) {
	if len(kept) > MaxCheckpoints {
		return nil, fmt.Errorf("export: %d kept checkpoints, more than the format's limit of %d", len(kept), MaxCheckpoints)
	}
	ew := &Writer{w: bufio.NewWriterSize(w, 1<<20), want: size}
	if _, err := ew.w.WriteString(MagicV2); err != nil {
		return nil, err
	}
	if err := ew.record(checkpoint); err != nil {
		return nil, err
	}
	n := binary.PutUvarint(ew.buf[:], uint64(len(kept)))
	if _, err := ew.w.Write(ew.buf[:n]); err != nil {
		return nil, err
	}
	for _, c := range kept {
		if err := ew.record(c); err != nil {
			return nil, err
		}
	}
	return ew, nil
}

func (w *Writer) record(b []byte) error {
	n := binary.PutUvarint(w.buf[:], uint64(len(b)))
	if _, err := w.w.Write(w.buf[:n]); err != nil {
		return err
	}
	_, err := w.w.Write(b)
	return err
}

// WriteEntry writes the next entry's stored bytes.
func (w *Writer) WriteEntry(entry []byte) error {
	if w.n >= w.want {
		return fmt.Errorf("export: entry %d is beyond the checkpoint's size %d", w.n, w.want)
	}
	w.n++
	return w.record(entry)
}

// Close flushes the export; it fails if fewer entries than the checkpoint's
// size were written.
func (w *Writer) Close() error {
	if w.n != w.want {
		return fmt.Errorf("export: wrote %d entries, the checkpoint promises %d", w.n, w.want)
	}
	return w.w.Flush()
}

// Reader reads an export.
type Reader struct {
	r          *bufio.Reader
	Checkpoint []byte // the checkpoint note, untrusted until verified
	// Kept are the kept checkpoints of a v2 export (nil for v1), each a
	// signed note with its cosignature lines, untrusted until verified.
	Kept [][]byte
	// Version is 1 or 2, from the magic line.
	Version int
	next    uint64
}

// NewReader reads the magic line and the checkpoint.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || (string(magic) != Magic && string(magic) != MagicV2) {
		return nil, fmt.Errorf("%w: not a consentledger export (first line is not %q or %q)", ErrFormat, Magic[:len(Magic)-1], MagicV2[:len(MagicV2)-1])
	}
	er := &Reader{r: br}
	cp, err := er.record(MaxCheckpointBytes)
	if err == io.EOF {
		err = fmt.Errorf("%w: no checkpoint", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	er.Checkpoint, er.Version = cp, 1
	if string(magic) == MagicV2 {
		er.Version = 2
		n, err := readCanonicalUvarint(br)
		if err != nil {
			return nil, fmt.Errorf("%w: count of kept checkpoints: %v", ErrFormat, err)
		}
		if n > MaxCheckpoints {
			return nil, fmt.Errorf("%w: %d kept checkpoints exceed the limit of %d", ErrFormat, n, MaxCheckpoints)
		}
		er.Kept = make([][]byte, 0, min(n, 1024))
		for i := uint64(0); i < n; i++ {
			c, err := er.record(MaxCheckpointBytes)
			if err == io.EOF {
				err = fmt.Errorf("%w: %d of %d kept checkpoints", ErrFormat, i, n)
			}
			if err != nil {
				return nil, fmt.Errorf("kept checkpoint %d: %w", i, err)
			}
			er.Kept = append(er.Kept, c)
		}
	}
	return er, nil
}

func (r *Reader) record(max uint64) ([]byte, error) {
	n, err := readCanonicalUvarint(r.r)
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, fmt.Errorf("%w: record length: %v", ErrFormat, err)
	}
	if n > max {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds the limit of %d", ErrFormat, n, max)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.r, b); err != nil {
		return nil, fmt.Errorf("%w: truncated record of %d bytes: %v", ErrFormat, n, err)
	}
	return b, nil
}

// Next returns the next entry's index and stored bytes, or io.EOF after
// the last one.
func (r *Reader) Next() (uint64, []byte, error) {
	b, err := r.record(MaxEntryBytes)
	if err != nil {
		if err != io.EOF {
			err = fmt.Errorf("entry %d: %w", r.next, err)
		}
		return 0, nil, err
	}
	i := r.next
	r.next++
	return i, b, nil
}

// readCanonicalUvarint reads a uvarint and refuses a non-minimal encoding,
// so that every export has exactly one encoding.
func readCanonicalUvarint(r io.ByteReader) (uint64, error) {
	var x uint64
	for i := 0; i < binary.MaxVarintLen64; i++ {
		b, err := r.ReadByte()
		if err != nil {
			if i > 0 && err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if i == binary.MaxVarintLen64-1 && b > 1 {
			return 0, errors.New("varint overflows 64 bits")
		}
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			if b == 0 && i > 0 {
				return 0, errors.New("non-minimal varint")
			}
			return x, nil
		}
	}
	return 0, errors.New("varint overflows 64 bits")
}
