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
package export

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic is the first line of an export.
const Magic = "consentledger-export v1\n"

// Limits a Reader enforces on untrusted input.
const (
	MaxCheckpointBytes = 64 << 10
	MaxEntryBytes      = 8 << 20
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
	next       uint64
}

// NewReader reads the magic line and the checkpoint.
func NewReader(r io.Reader) (*Reader, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != Magic {
		return nil, fmt.Errorf("%w: not a consentledger export (first line is not %q)", ErrFormat, Magic[:len(Magic)-1])
	}
	er := &Reader{r: br}
	cp, err := er.record(MaxCheckpointBytes)
	if err == io.EOF {
		err = fmt.Errorf("%w: no checkpoint", ErrFormat)
	}
	if err != nil {
		return nil, err
	}
	er.Checkpoint = cp
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
