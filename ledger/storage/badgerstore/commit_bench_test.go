package badgerstore

import (
	"context"
	"fmt"
	"testing"

	"github.com/consentledger/consentledger/ledger/storage"
)

// BenchmarkCommit measures one synced transaction of n writes of 400 bytes.
func BenchmarkCommit(b *testing.B) {
	for _, n := range []int{1, 64} {
		for _, size := range []int{16, 400, 25600} {
			b.Run(fmt.Sprintf("writes=%d/bytes=%d", n, size), func(b *testing.B) {
				s, err := Open(b.TempDir(), Options{})
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				val := make([]byte, size)
				k := 0
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					err := s.Update(context.Background(), func(tx storage.WriteTx) error {
						for j := 0; j < n; j++ {
							k++
							if err := tx.Set([]byte(fmt.Sprintf("key%012d", k)), val); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
