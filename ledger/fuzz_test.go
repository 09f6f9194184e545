package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
	"google.golang.org/protobuf/proto"

	"github.com/consentledger/consentledger/ledger/storage"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// The fuzz targets below share state built once per target (a test ledger
// and values read from it) outside the fuzz function; the fuzz functions
// only read it. Seeds come from values a real ledger produced: f.Add seeds
// are taken from a ledger built when the target starts, and the committed
// corpus under testdata/fuzz holds encodings written by another such ledger.
// Test ledgers have fresh keys and timestamps, so the committed checkpoints
// are signed by a key the fuzzed ledger does not know, and the committed
// proofs have the right shapes but not the fuzzed ledger's hashes.

// fuzzLedger returns a test ledger holding every kind of entry the ledger
// writes: consent events and send decisions (with and without idempotency
// keys, with subject and consent-head links), the breach lifecycle, an
// erasure and policy publications, padded with policy publications to at
// least n entries.
func fuzzLedger(tb testing.TB, n int) (*Ledger, storage.Store) {
	tb.Helper()
	l, st, _ := newTestLedger(tb, Options{})
	wa, sms := pb.Channel_CHANNEL_WHATSAPP, pb.Channel_CHANNEL_SMS
	keyed := func(e *pb.Entry, key string) *pb.Entry {
		e.IdempotencyKey = key
		return e
	}
	detected := time.Date(2026, 5, 4, 9, 0, 0, 0, time.UTC)
	br := breach("br-1")
	br.GetBreachDetected().DetectedAt = timestampOf(detected)
	br.GetBreachDetected().Channels = []pb.Channel{sms, wa}
	br.GetBreachDetected().SubjectsEstimate = 1200
	reqs := []*Request{
		{Entry: keyed(grant(wa, "marketing", "service_updates"), "grant-1"), Subject: phone(1), Fingerprint: []byte("fp-1")},
		{Entry: confirm(wa, "marketing"), Subject: phone(1)},
		{Entry: keyed(decision(wa, "marketing", true), "send-1"), Subject: phone(1)},
		{Entry: grant(sms, "marketing"), Subject: phone(2)},
		{Entry: withdraw(sms), Subject: phone(2)},
		{Entry: decision(sms, "marketing", false), Subject: phone(2)},
		{Entry: decision(sms, "marketing", false), Subject: phone(3)},
		{Entry: br},
		{Entry: &pb.Entry{Actor: "dpo", Event: &pb.Entry_BreachAuthorityNotified{BreachAuthorityNotified: &pb.BreachAuthorityNotified{
			BreachId: "br-1", Authority: "BfDI", Phase: "preliminary", NotifiedAt: timestampOf(detected.Add(30 * time.Hour)), DelayReason: "forensics",
		}}}},
		{Entry: &pb.Entry{Actor: "dpo", Event: &pb.Entry_BreachSubjectsNotified{BreachSubjectsNotified: &pb.BreachSubjectsNotified{
			BreachId: "br-1", NotifiedAt: timestampOf(detected.Add(40 * time.Hour)), Method: "email", SubjectsNotified: 1180,
		}}}},
		{Entry: &pb.Entry{Actor: "dpo", Event: &pb.Entry_BreachClosed{BreachClosed: &pb.BreachClosed{BreachId: "br-1", Summary: "contained"}}}},
		{Entry: erase(), Subject: phone(2)},
		{Entry: keyed(policyEntry(0), "policy-0")},
	}
	for _, r := range reqs {
		mustAppend(tb, l, r)
	}
	if pad := n - len(reqs); pad > 0 {
		appendRaw(tb, l, pad)
	}
	return l, st
}

// storedEntries returns the stored bytes of every entry of l.
func storedEntries(tb testing.TB, l *Ledger) [][]byte {
	tb.Helper()
	entries, err := l.Entries(context.Background(), 0, int(l.Size()))
	if err != nil {
		tb.Fatal(err)
	}
	return entries
}

// storedValues returns the values of every key in st with the given prefix.
func storedValues(tb testing.TB, st storage.Store, prefix []byte) (keys, values [][]byte) {
	tb.Helper()
	err := st.View(context.Background(), func(tx storage.ReadTx) error {
		return tx.Scan(prefix, storage.PrefixEnd(prefix), func(k, v []byte) error {
			keys = append(keys, bytes.Clone(k))
			values = append(values, bytes.Clone(v))
			return nil
		})
	})
	if err != nil {
		tb.Fatal(err)
	}
	return keys, values
}

func flipByte(b []byte, i int) []byte {
	c := bytes.Clone(b)
	c[i] ^= 0x01
	return c
}

// splitHashes reads b as a concatenation of 32-byte hashes, ignoring a
// trailing partial hash.
func splitHashes(b []byte) [][]byte {
	hs := make([][]byte, 0, len(b)/hashSize)
	for ; len(b) >= hashSize; b = b[hashSize:] {
		hs = append(hs, b[:hashSize:hashSize])
	}
	return hs
}

func joinHashes(hs [][]byte) []byte { return bytes.Join(hs, nil) }

func sameHashes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// FuzzDecodeEntry checks that DecodeEntry never panics and that decoding is
// stable: an entry it accepts re-marshals (deterministically) to bytes that
// decode to an equal entry and re-marshal to the same bytes. The ledger never
// re-marshals an entry to verify it (leaf hashes are over the stored bytes),
// so arbitrary accepted input need not round-trip byte for byte; entries the
// ledger wrote do, which the seeding checks.
func FuzzDecodeEntry(f *testing.F) {
	l, _ := fuzzLedger(f, 0)
	for _, data := range storedEntries(f, l) {
		e, err := DecodeEntry(data)
		if err != nil {
			f.Fatalf("stored entry does not decode: %v", err)
		}
		if again, err := (proto.MarshalOptions{Deterministic: true}).Marshal(e); err != nil || !bytes.Equal(again, data) {
			f.Fatalf("stored entry %d does not re-marshal to its stored bytes (%v)", e.Index, err)
		}
		f.Add(data)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := DecodeEntry(data)
		if err != nil {
			return
		}
		b1, err := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if err != nil {
			t.Fatalf("a decoded entry does not marshal: %v", err)
		}
		e2, err := DecodeEntry(b1)
		if err != nil {
			t.Fatalf("a re-marshalled entry does not decode: %v", err)
		}
		if !proto.Equal(e, e2) {
			t.Fatalf("decode(marshal(e)) != e:\n%v\n%v", e, e2)
		}
		b2, err := proto.MarshalOptions{Deterministic: true}.Marshal(e2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("the re-marshalled encoding is not a fixed point (%v):\n%x\n%x", err, b1, b2)
		}
	})
}

// FuzzUnmarshalTile checks that unmarshalTile never panics and accepts only
// the canonical encoding: a tile it returns has width 1..256, does not alias
// its input, has exactly its complete nodes, and marshals back to the input.
func FuzzUnmarshalTile(f *testing.F) {
	l, st := fuzzLedger(f, 300) // tiles 0/0 (complete) and 1/0 stored, 0/1 at the edge
	_, tiles := storedValues(f, st, []byte{tabTile})
	if len(tiles) < 2 {
		f.Fatalf("the seed ledger stored %d tiles, want at least 2", len(tiles))
	}
	edge := l.view.Load().edges[0]
	if edge == nil {
		f.Fatal("the seed ledger has no incomplete level-0 tile")
	}
	tiles = append(tiles, edge.marshal())
	for _, raw := range tiles {
		f.Add(raw)
		f.Add(raw[:len(raw)-1])
	}
	f.Add([]byte{0, 0})
	f.Add([]byte{1, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		id := tileID{level: 2, index: 5}
		in := bytes.Clone(data)
		tl, err := unmarshalTile(id, in)
		if err != nil {
			return
		}
		if tl.id != id {
			t.Fatalf("tile id = %v, want %v", tl.id, id)
		}
		if tl.width < 1 || tl.width > tileWidth {
			t.Fatalf("accepted a tile of width %d", tl.width)
		}
		if len(tl.hashes) != tileNodes*hashSize {
			t.Fatalf("tile holds %d hash bytes, want %d", len(tl.hashes), tileNodes*hashSize)
		}
		clear(in) // the tile must not share memory with its input
		if got := tl.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("marshal(unmarshal(x)) != x for width %d:\n%x\n%x", tl.width, got, data)
		}
		for row := uint(0); row < tileHeight; row++ {
			n := uint64(tl.width >> row)
			if n > 0 {
				if _, ok := tl.node(row, n-1); !ok {
					t.Fatalf("row %d lacks node %d of a width-%d tile", row, n-1, tl.width)
				}
			}
			if _, ok := tl.node(row, n); ok {
				t.Fatalf("row %d has node %d beyond a width-%d tile", row, n, tl.width)
			}
		}
	})
}

// FuzzUnmarshalMeta checks that unmarshalMeta never panics, rejects exactly
// the invalid lengths, does not alias its input, and round-trips.
//
// The round trip is exact for size > 0. It is not for size 0: an empty tree
// has no last leaf, so unmarshalMeta ignores the 32-byte last-leaf slot and
// marshal writes zeros there (the ledger only ever writes metadata after a
// batch, with size > 0, so size 0 with a non-zero slot never comes from the
// ledger). For size 0 the strongest property is that the input round-trips
// with that slot zeroed, and that the result is then a fixed point.
func FuzzUnmarshalMeta(f *testing.F) {
	l, st, _ := newTestLedger(f, Options{})
	f.Add((&treeMeta{}).marshal())
	for size := 1; size <= 300; size++ {
		mustAppend(f, l, &Request{Entry: policyEntry(size)})
		switch size {
		case 1, 2, 3, 7, 8, 255, 256, 257, 300:
			_, metas := storedValues(f, st, metaKey)
			if len(metas) != 1 {
				f.Fatalf("found %d tree metadata records, want 1", len(metas))
			}
			f.Add(metas[0])
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		m, err := unmarshalMeta(in)
		validLen := len(data) >= 16+hashSize && (len(data)-16)%hashSize == 0
		if err != nil {
			if validLen {
				t.Fatalf("rejected %d bytes, a valid length: %v", len(data), err)
			}
			return
		}
		if !validLen {
			t.Fatalf("accepted %d bytes, an invalid length", len(data))
		}
		clear(in) // the metadata must not share memory with its input
		if want := binary.BigEndian.Uint64(data); m.size != want {
			t.Fatalf("size = %d, want %d", m.size, want)
		}
		if want := int64(binary.BigEndian.Uint64(data[8:])); m.lastTime.UnixNano() != want {
			t.Fatalf("lastTime = %d ns, want %d", m.lastTime.UnixNano(), want)
		}
		if want := (len(data) - 16 - hashSize) / hashSize; len(m.rangeNodes) != want {
			t.Fatalf("%d range nodes, want %d", len(m.rangeNodes), want)
		}
		want := data
		if m.size == 0 {
			if m.lastLeaf != nil {
				t.Fatalf("an empty tree has last leaf %x", m.lastLeaf)
			}
			want = bytes.Clone(data)
			clear(want[16 : 16+hashSize])
		} else if len(m.lastLeaf) != hashSize {
			t.Fatalf("last leaf is %d bytes", len(m.lastLeaf))
		}
		got := m.marshal()
		if !bytes.Equal(got, want) {
			t.Fatalf("marshal(unmarshal(x)) = %x, want %x", got, want)
		}
		m2, err := unmarshalMeta(got)
		if err != nil {
			t.Fatalf("re-marshalled metadata does not unmarshal: %v", err)
		}
		if again := m2.marshal(); !bytes.Equal(again, got) {
			t.Fatalf("the re-marshalled metadata is not a fixed point:\n%x\n%x", got, again)
		}
	})
}

// FuzzUnmarshalIdem checks that unmarshalIdem never panics, rejects exactly
// the records shorter than 48 bytes, does not alias its input, and
// round-trips exactly (every field is stored verbatim; recorded_at as Unix
// nanoseconds, which every int64 survives).
func FuzzUnmarshalIdem(f *testing.F) {
	_, st := fuzzLedger(f, 0)
	_, recs := storedValues(f, st, []byte{tabIdem})
	if len(recs) < 3 {
		f.Fatalf("the seed ledger stored %d idempotency records, want at least 3", len(recs))
	}
	for _, r := range recs {
		f.Add(r)
	}
	f.Add(make([]byte, 8+hashSize+8))
	f.Fuzz(func(t *testing.T, data []byte) {
		in := bytes.Clone(data)
		r, err := unmarshalIdem(in)
		if err != nil {
			if len(data) >= 8+hashSize+8 {
				t.Fatalf("rejected a record of %d bytes: %v", len(data), err)
			}
			return
		}
		if len(data) < 8+hashSize+8 {
			t.Fatalf("accepted a record of %d bytes", len(data))
		}
		clear(in) // the record must not share memory with its input
		if r.index != binary.BigEndian.Uint64(data) || !bytes.Equal(r.leafHash, data[8:8+hashSize]) || r.subjectID != string(data[8+hashSize+8:]) {
			t.Fatalf("record %+v does not hold the fields of %x", r, data)
		}
		if got := r.marshal(); !bytes.Equal(got, data) {
			t.Fatalf("marshal(unmarshal(x)) != x:\n%x\n%x", got, data)
		}
	})
}

// FuzzParseCheckpoint checks that parseCheckpoint never panics and never
// accepts a forged or altered checkpoint.
//
// "Accepted only if byte-identical to a note the ledger signed" does not
// hold, and cannot with C2SP signed notes as golang.org/x/mod/sumdb/note
// opens them, so the test asserts the strongest property that does. Three
// kinds of input that differ from every signed note are accepted, all with
// the signed text and the ledger's genuine signature unchanged:
//   - a signature whose last base64 character differs only in the padding
//     bits (note uses base64.StdEncoding, which ignores them), so each note
//     has four encodings of its one signature;
//   - extra signature lines by other keys, such as witness cosignatures
//     (unknown signers are skipped, by design of the format);
//   - a second signature line by the ledger's key after the first, which
//     note.Open skips without verifying ("drop repeated signatures").
//
// The property asserted: whenever parseCheckpoint succeeds, the signed text
// of the input (everything up to the blank line that starts the signature
// block) is byte-identical to the text of a note the ledger signed, the
// parsed size and root are that checkpoint's, the first signature line by
// the ledger's key (name and key hash) decodes to exactly the signature the
// ledger made (Ed25519 signatures are deterministic and Go's verifier
// rejects non-canonical ones, so no other signature bytes verify), and the
// returned Note is the input.
func FuzzParseCheckpoint(f *testing.F) {
	l, _, _ := newTestLedger(f, Options{}) // signs the checkpoint of size 0
	ctx := context.Background()
	for _, n := range []int{1, 2, 4} {
		appendRaw(f, l, n)
		if _, err := l.SignCheckpoint(ctx); err != nil {
			f.Fatal(err)
		}
	}
	v, err := note.NewVerifier(l.VerifierKey())
	if err != nil {
		f.Fatal(err)
	}
	type signedNote struct {
		ckpt *Checkpoint
		sig  []byte // the ledger's signature, key hash first, decoded
	}
	signed := map[string]signedNote{} // by signed text
	var notes [][]byte
	err = l.Checkpoints(ctx, func(c *Checkpoint) error {
		text, _ := splitNote(c.Note)
		sig := ledgerSignature(c.Note, v)
		if sig == nil {
			f.Fatalf("signed note %q carries no signature by the ledger's key", c.Note)
		}
		signed[string(text)] = signedNote{c, sig}
		notes = append(notes, c.Note)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	if len(signed) != 4 {
		f.Fatalf("the ledger kept %d checkpoints, want 4", len(signed))
	}
	otherKey, _, err := NewKeys(l.Origin()) // the same origin under another key
	if err != nil {
		f.Fatal(err)
	}
	witnessKey, _, err := NewKeys("witness.example/w1")
	if err != nil {
		f.Fatal(err)
	}
	for _, raw := range notes {
		text, sigs := splitNote(raw)
		c := signed[string(text)].ckpt
		f.Add(raw)
		f.Add(flipByte(raw, 0))                                                         // origin
		f.Add(flipByte(raw, len(text)-1-len("AAAA")))                                   // root hash
		f.Add(flipByte(raw, len(raw)-len("AA=\n")))                                     // signature
		f.Add(raw[:len(text)+1])                                                        // signature line removed
		f.Add(raw[:len(raw)-1])                                                         // final newline removed
		f.Add(append(bytes.Clone(raw), sigs...))                                        // signature repeated
		f.Add(append(bytes.Clone(raw), flipByte(sigs, len(sigs)-8)...))                 // repeated, altered
		f.Add([]byte(strings.Replace(string(raw), l.Origin(), "other.example/log", 1))) // another origin, same signature
		// The padding bits of the signature's last base64 character.
		// A 68-byte signature ends in "X=\n", X holding 4 bits and 2 padding bits.
		if i := len(raw) - len("X=\n"); bytes.HasSuffix(raw, []byte("=\n")) {
			pad := bytes.Clone(raw)
			pad[i] = base64Alphabet[strings.IndexByte(base64Alphabet, pad[i])|3]
			f.Add(pad)
		}
		// Cosigned by a witness.
		if n, err := note.Open(raw, note.VerifierList(v)); err == nil {
			if co, err := note.Sign(n, witnessKey.Signer); err == nil {
				f.Add(co)
			}
		}
		// The same checkpoint signed by another key for the same origin, and
		// another origin's checkpoint signed by the ledger's key.
		for _, s := range []struct {
			origin string
			signer note.Signer
		}{{l.Origin(), otherKey.Signer}, {"other.example/log", l.keys.Signer}} {
			body := log.Checkpoint{Origin: s.origin, Size: c.Size, Hash: c.Root}.Marshal()
			if forged, err := note.Sign(&note.Note{Text: string(body)}, s.signer); err == nil {
				f.Add(forged)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := l.parseCheckpoint(data)
		if err != nil {
			return
		}
		text, _ := splitNote(data)
		want, ok := signed[string(text)]
		if !ok {
			t.Fatalf("accepted a checkpoint whose text the ledger never signed:\n%q", data)
		}
		if c.Size != want.ckpt.Size || !bytes.Equal(c.Root, want.ckpt.Root) {
			t.Fatalf("parsed size %d root %x from the text of the checkpoint of size %d root %x", c.Size, c.Root, want.ckpt.Size, want.ckpt.Root)
		}
		if sig := ledgerSignature(data, v); !bytes.Equal(sig, want.sig) {
			t.Fatalf("accepted %q, whose first signature by the ledger's key is %x, not the ledger's %x", data, sig, want.sig)
		}
		if !bytes.Equal(c.Note, data) {
			t.Fatalf("parsed note %q, want the input %q", c.Note, data)
		}
	})
}

const base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// splitNote splits a signed note as note.Open does: the text up to and
// including the newline before the last blank line, and the signature block
// after it. A note without a blank line is all text.
func splitNote(msg []byte) (text, sigs []byte) {
	i := bytes.LastIndex(msg, []byte("\n\n"))
	if i < 0 {
		return msg, nil
	}
	return msg[:i+1], msg[i+2:]
}

// ledgerSignature returns the first signature in msg's signature block by
// v's name and key hash, decoded (key hash first), or nil.
func ledgerSignature(msg []byte, v note.Verifier) []byte {
	_, sigs := splitNote(msg)
	for _, line := range strings.Split(string(sigs), "\n") {
		line, ok := strings.CutPrefix(line, "\u2014 ")
		if !ok {
			continue
		}
		name, b64, _ := strings.Cut(line, " ")
		sig, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || name != v.Name() || len(sig) < 4 || binary.BigEndian.Uint32(sig) != v.KeyHash() {
			continue
		}
		return sig
	}
	return nil
}
