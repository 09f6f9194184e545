// Package storagetest is the conformance test for storage.Store
// implementations, in the manner of golang.org/x/mod/sumdb/storage's
// TestStorage: every implementation runs it.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/consentledger/consentledger/ledger/storage"
)

// Run tests the store returned by newStore, which must be empty.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	ctx := context.Background()
	t.Run("GetMissing", func(t *testing.T) {
		s := newStore(t)
		err := s.View(ctx, func(tx storage.ReadTx) error {
			_, err := tx.Get([]byte("nope"))
			return err
		})
		if !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
		}
	})
	t.Run("SetGetDelete", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx storage.WriteTx) error {
			if err := tx.Set([]byte("a"), []byte("1")); err != nil {
				return err
			}
			// Reads see the transaction's own writes.
			v, err := tx.Get([]byte("a"))
			if err != nil || string(v) != "1" {
				return fmt.Errorf("own write: got %q, %v; want 1", v, err)
			}
			return tx.Set([]byte("b"), []byte{})
		})
		checkGet(t, s, "a", "1")
		checkGet(t, s, "b", "")
		mustUpdate(t, s, func(tx storage.WriteTx) error { return tx.Delete([]byte("a")) })
		checkMissing(t, s, "a")
		mustUpdate(t, s, func(tx storage.WriteTx) error { return tx.Delete([]byte("never")) })
	})
	t.Run("FailedUpdateWritesNothing", func(t *testing.T) {
		s := newStore(t)
		boom := errors.New("boom")
		err := s.Update(ctx, func(tx storage.WriteTx) error {
			if err := tx.Set([]byte("x"), []byte("1")); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("Update = %v, want the closure's error", err)
		}
		checkMissing(t, s, "x")
	})
	t.Run("GetReturnsCopy", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx storage.WriteTx) error { return tx.Set([]byte("k"), []byte("abc")) })
		_ = s.View(ctx, func(tx storage.ReadTx) error {
			v, _ := tx.Get([]byte("k"))
			v[0] = 'z'
			return nil
		})
		checkGet(t, s, "k", "abc")
	})
	t.Run("Scan", func(t *testing.T) {
		s := newStore(t)
		mustUpdate(t, s, func(tx storage.WriteTx) error {
			for _, k := range []string{"p/3", "p/1", "q/1", "p/2", "o/9", "p/\xff"} {
				if err := tx.Set([]byte(k), []byte("v"+k)); err != nil {
					return err
				}
			}
			return nil
		})
		for _, tc := range []struct {
			start, end string
			want       []string
		}{
			{"p/", string(storage.PrefixEnd([]byte("p/"))), []string{"p/1", "p/2", "p/3", "p/\xff"}},
			{"p/2", "p/3", []string{"p/2"}},
			{"p/2", "", []string{"p/2", "p/3", "p/\xff", "q/1"}},
			{"r", "", nil},
		} {
			var got []string
			err := s.View(ctx, func(tx storage.ReadTx) error {
				return tx.Scan([]byte(tc.start), []byte(tc.end), func(k, v []byte) error {
					if string(v) != "v"+string(k) {
						return fmt.Errorf("value of %q = %q", k, v)
					}
					got = append(got, string(k))
					return nil
				})
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Scan(%q, %q) = %q, want %q", tc.start, tc.end, got, tc.want)
			}
		}
		// Scan inside a write transaction sees its own writes and deletes.
		mustUpdate(t, s, func(tx storage.WriteTx) error {
			if err := tx.Delete([]byte("p/1")); err != nil {
				return err
			}
			if err := tx.Set([]byte("p/0"), []byte("vp/0")); err != nil {
				return err
			}
			var got []string
			err := tx.Scan([]byte("p/"), []byte("p/3"), func(k, v []byte) error {
				got = append(got, string(k))
				return nil
			})
			if err != nil {
				return err
			}
			if fmt.Sprint(got) != "[p/0 p/2]" {
				return fmt.Errorf("scan in write tx = %q, want [p/0 p/2]", got)
			}
			return nil
		})
		// A scan stops at the closure's error.
		stop := errors.New("stop")
		n := 0
		err := s.View(ctx, func(tx storage.ReadTx) error {
			return tx.Scan(nil, nil, func(k, v []byte) error { n++; return stop })
		})
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("Scan with stopping closure: err=%v after %d keys, want stop after 1", err, n)
		}
	})
	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Update(cctx, func(tx storage.WriteTx) error { return tx.Set([]byte("c"), []byte("1")) })
		if err == nil {
			t.Fatal("Update with canceled context succeeded")
		}
		checkMissing(t, s, "c")
	})
	t.Run("PrefixEnd", func(t *testing.T) {
		for in, want := range map[string]string{"a": "b", "a\xff": "b", "\xff\xff": "", "ab": "ac"} {
			if got := string(storage.PrefixEnd([]byte(in))); got != want {
				t.Errorf("PrefixEnd(%q) = %q, want %q", in, got, want)
			}
		}
	})
}

func mustUpdate(t *testing.T, s storage.Store, fn func(storage.WriteTx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func checkGet(t *testing.T, s storage.Store, key, want string) {
	t.Helper()
	err := s.View(context.Background(), func(tx storage.ReadTx) error {
		v, err := tx.Get([]byte(key))
		if err != nil {
			return err
		}
		if string(v) != want {
			return fmt.Errorf("Get(%q) = %q, want %q", key, v, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkMissing(t *testing.T, s storage.Store, key string) {
	t.Helper()
	err := s.View(context.Background(), func(tx storage.ReadTx) error {
		_, err := tx.Get([]byte(key))
		return err
	})
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%q) = %v, want ErrNotFound", key, err)
	}
}
