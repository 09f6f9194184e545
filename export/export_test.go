package export

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

func write(t testing.TB, cp string, entries ...string) []byte {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, []byte(cp), uint64(len(entries)))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.WriteEntry([]byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeV2(t testing.TB, cp string, kept []string, entries ...string) []byte {
	var buf bytes.Buffer
	k := make([][]byte, len(kept))
	for i, c := range kept {
		k[i] = []byte(c)
	}
	w, err := NewWriterV2(&buf, []byte(cp), uint64(len(entries)), k)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.WriteEntry([]byte(e)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRoundTripV2: the kept checkpoints come back in order, then the entries.
func TestRoundTripV2(t *testing.T) {
	kept := []string{"origin\n1\nr1\n\n— sig\n— w1 cosig\n", "origin\n3\nroot\n\n— sig\n"}
	r, err := NewReader(bytes.NewReader(writeV2(t, "origin\n3\nroot\n\n— sig\n", kept, "a", "b", "c")))
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 2 || len(r.Kept) != 2 || string(r.Kept[0]) != kept[0] || string(r.Kept[1]) != kept[1] {
		t.Fatalf("version %d, kept %q", r.Version, r.Kept)
	}
	for want, e := range []string{"a", "b", "c"} {
		if i, b, err := r.Next(); err != nil || i != uint64(want) || string(b) != e {
			t.Fatalf("Next = %d %q %v", i, b, err)
		}
	}
	// A v1 export reads as before, with no kept checkpoints.
	if r, err := NewReader(bytes.NewReader(write(t, "cp", "a"))); err != nil || r.Version != 1 || r.Kept != nil {
		t.Errorf("v1: %v %v", r, err)
	}
	// Truncated or oversized lists are malformed.
	good := writeV2(t, "cp", kept)
	for name, in := range map[string][]byte{
		"truncated kept": good[:len(good)-3],
		"too many kept":  append([]byte(MagicV2+"\x02cp"), 0xff, 0xff, 0xff, 0x7f),
	} {
		if _, err := NewReader(bytes.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	entries := []string{"a", "", string(bytes.Repeat([]byte{7}, 300))}
	r, err := NewReader(bytes.NewReader(write(t, "origin\n3\nroot\n\n— sig\n", entries...)))
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Checkpoint) != "origin\n3\nroot\n\n— sig\n" {
		t.Errorf("checkpoint = %q", r.Checkpoint)
	}
	for want := range entries {
		i, b, err := r.Next()
		if err != nil || i != uint64(want) || string(b) != entries[want] {
			t.Fatalf("Next = %d %q %v, want %d %q", i, b, err, want, entries[want])
		}
	}
	if _, _, err := r.Next(); err != io.EOF {
		t.Errorf("after the last entry: %v, want io.EOF", err)
	}
}

func TestWriterCountsEntries(t *testing.T) {
	w, _ := NewWriter(io.Discard, []byte("cp"), 1)
	if err := w.Close(); err == nil {
		t.Error("Close with a missing entry succeeded")
	}
	w.WriteEntry([]byte("x"))
	if err := w.WriteEntry([]byte("y")); err == nil {
		t.Error("an entry beyond the checkpoint's size was accepted")
	}
}

func TestMalformed(t *testing.T) {
	good := write(t, "cp", "entry")
	for name, in := range map[string][]byte{
		"empty":            nil,
		"wrong magic":      append([]byte("something else v1\n"), good[len(Magic):]...),
		"no checkpoint":    []byte(Magic),
		"huge checkpoint":  append([]byte(Magic), 0xff, 0xff, 0xff, 0x7f),
		"truncated record": good[:len(good)-2],
	} {
		r, err := NewReader(bytes.NewReader(in))
		if err == nil {
			_, _, err = r.Next()
		}
		if !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func FuzzReader(f *testing.F) {
	f.Add(write(f, "cp", "a", "bb"))
	f.Add(write(f, "", ""))
	f.Add([]byte(Magic + "\x05hello\x80"))
	f.Add(writeV2(f, "cp", []string{"k1", "k22"}, "a"))
	f.Add(writeV2(f, "cp", nil))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := NewReader(bytes.NewReader(in))
		if err != nil {
			return
		}
		var got [][]byte
		for n := 0; ; n++ {
			_, b, err := r.Next()
			if err != nil {
				if err != io.EOF && !errors.Is(err, ErrFormat) {
					t.Fatalf("error of another class: %v", err)
				}
				if err != io.EOF {
					return
				}
				break
			}
			got = append(got, b)
		}
		// A well-formed input round-trips through the Writer.
		var entries []string
		for _, b := range got {
			entries = append(entries, string(b))
		}
		again := write(t, string(r.Checkpoint), entries...)
		if r.Version == 2 {
			kept := make([]string, len(r.Kept))
			for i, k := range r.Kept {
				kept[i] = string(k)
			}
			again = writeV2(t, string(r.Checkpoint), kept, entries...)
		}
		if !bytes.Equal(again, in) {
			t.Fatalf("re-encoding differs: %s", fmt.Sprintf("%q vs %q", again, in))
		}
	})
}
