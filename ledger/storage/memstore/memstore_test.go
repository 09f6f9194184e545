package memstore_test

import (
	"testing"

	"github.com/consentledger/consentledger/ledger/storage"
	"github.com/consentledger/consentledger/ledger/storage/memstore"
	"github.com/consentledger/consentledger/ledger/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store { return memstore.New() })
}
