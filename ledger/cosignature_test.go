package ledger

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

func TestCosignatures(t *testing.T) {
	ctx := context.Background()
	l, _, _ := newTestLedger(t, Options{})
	var sizes []uint64
	for i := range 3 {
		mustAppend(t, l, &Request{Entry: policyEntry(i)})
		cp, err := l.SignCheckpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, cp.Size)
	}
	line := func(w string) []byte { return []byte("— " + w + ".example AAAA" + w + "\n") }
	for _, bad := range [][]byte{nil, []byte("— w a\n— w b\n"), []byte("w a\n"), []byte("— w a")} {
		if err := l.AddCosignature(ctx, sizes[0], "w1", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("AddCosignature(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := l.AddCosignature(ctx, 99, "w1", line("w1")); !errors.Is(err, ErrNotFound) {
		t.Errorf("a cosignature of a size never signed: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.AddCosignature(ctx, sizes[1], "w2", line("w2")))
	must(l.AddCosignature(ctx, sizes[1], "w1", line("w1")))
	must(l.AddCosignature(ctx, sizes[2], "w1", line("w1")))
	must(l.AddCosignature(ctx, sizes[2], "w1", line("w1again"))) // a re-cosigning replaces

	cp, err := l.CheckpointAt(ctx, sizes[1])
	must(err)
	got, n, err := l.WithCosignatures(ctx, cp)
	must(err)
	if want := append(append(append([]byte(nil), cp.Note...), line("w1")...), line("w2")...); n != 2 || !bytes.Equal(got, want) {
		t.Errorf("WithCosignatures = %q (%d), want %q", got, n, want)
	}
	if !bytes.Equal(cp.Note, mustCheckpoint(t, l, sizes[1]).Note) {
		t.Error("the stored note was rewritten")
	}
	last, err := l.LastCosigned(ctx)
	must(err)
	if last["w1"].Size != sizes[2] || !bytes.Equal(last["w1"].Line, line("w1again")) || last["w2"].Size != sizes[1] {
		t.Errorf("LastCosigned = %v", last)
	}
	var listed []uint64
	must(l.CosignedCheckpoints(ctx, sizes[1], 1, func(c *Checkpoint, cosigned []byte) error {
		listed = append(listed, c.Size)
		if !bytes.HasSuffix(cosigned, line("w2")) {
			t.Errorf("listed note %q lacks its cosignatures", cosigned)
		}
		return nil
	}))
	if len(listed) != 1 || listed[0] != sizes[1] {
		t.Errorf("CosignedCheckpoints(from %d, 1) listed %v", sizes[1], listed)
	}
}

func mustCheckpoint(t *testing.T, l *Ledger, size uint64) *Checkpoint {
	t.Helper()
	c, err := l.CheckpointAt(context.Background(), size)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
