package ledger

import (
	"encoding/binary"
	"fmt"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
	"time"
)

// Store layout. Every key starts with one byte naming its table.
//
//	'e' index(8)          entry bytes, exactly as hashed
//	't' level(1) index(8) tile of node hashes (see tile.go)
//	'm'                   tree metadata (size, compact range, last leaf, clock)
//	'c' size(8)           signed checkpoint note for that size
//	'l'                   the latest signed checkpoint note
//	'i' actor 0 key       idempotency record: the entry a retry gets back
//	'f' actor 0 key       fingerprint of the request that first used the key
//	's' subject_id        SubjectState (state index)
//	'a' subject_id 0 channel(1) purpose
//	                      EntryRef of the last allowed send (state index)
//	'a' subject_id 0      EntryRef of the subject's last allowed send on any channel
//	'b' breach_id         BreachState (state index)
//	'p'                   PolicyState: the active policy (state index)
//	'r' index(8)          EntryRef of an InboundReview (state index)
//	'v' 'b'               EntryRef of the latest breach event (state index)
//	'x' hmac(32)          erasable subject table row: salt(32) subject_id
//	'w' size(8) witness   a witness's cosignature line for the checkpoint of that size
//
// 'e', 't', 'm', 'c', 'l' and 'w' are the log; 'i', 's', 'a', 'b', 'p', 'r' and 'v' are the
// state index, derivable from the entries; 'x' is outside the tree and
// erasable; 'f' is not derivable (a rebuilt index keeps the fingerprints).
const (
	tabEntry      = 'e'
	tabTile       = 't'
	tabMeta       = 'm'
	tabCheckpoint = 'c'
	tabLatest     = 'l'
	tabIdem       = 'i'
	tabFinger     = 'f'
	tabSubject    = 's'
	tabLastSend   = 'a'
	tabBreach     = 'b'
	tabPolicy     = 'p'
	tabReview     = 'r'
	tabEpoch      = 'v'
	tabTable      = 'x'
	tabCosig      = 'w'
)

// stateTables are the tables RebuildState derives from the entries.
var stateTables = []byte{tabIdem, tabSubject, tabLastSend, tabBreach, tabPolicy, tabReview, tabEpoch, tabNotice, tabPlan}

func reviewKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = tabReview
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func entryKey(index uint64) []byte {
	k := make([]byte, 9)
	k[0] = tabEntry
	binary.BigEndian.PutUint64(k[1:], index)
	return k
}

func tileKey(id tileID) []byte {
	k := make([]byte, 10)
	k[0] = tabTile
	k[1] = id.level
	binary.BigEndian.PutUint64(k[2:], id.index)
	return k
}

func checkpointKey(size uint64) []byte {
	k := make([]byte, 9)
	k[0] = tabCheckpoint
	binary.BigEndian.PutUint64(k[1:], size)
	return k
}

func cosigKey(size uint64, witness string) []byte {
	k := make([]byte, 9, 9+len(witness))
	k[0] = tabCosig
	binary.BigEndian.PutUint64(k[1:], size)
	return append(k, witness...)
}

var metaKey = []byte{tabMeta}
var policyKey = []byte{tabPolicy}
var latestCheckpointKey = []byte{tabLatest}

func idemKey(actor, key string) []byte {
	k := make([]byte, 0, 2+len(actor)+len(key))
	k = append(k, tabIdem)
	k = append(k, actor...)
	k = append(k, 0)
	return append(k, key...)
}

func fingerKey(actor, key string) []byte {
	k := idemKey(actor, key)
	k[0] = tabFinger
	return k
}

func subjectKey(subjectID string) []byte { return append([]byte{tabSubject}, subjectID...) }
func lastSendPrefix(subjectID string) []byte {
	return append(append([]byte{tabLastSend}, subjectID...), 0)
}

func lastSendKey(subjectID string, ch pb.Channel, purpose string) []byte {
	return append(append(lastSendPrefix(subjectID), byte(ch)), purpose...)
}

// subjectLastSendKey holds the subject's last allowed send on any channel;
// the per-channel keys extend it by at least a channel byte.
func subjectLastSendKey(subjectID string) []byte { return lastSendPrefix(subjectID) }

// breachEpochKey holds the EntryRef of the latest breach event: the open
// breaches a decision's input lists are unchanged while it is.
var breachEpochKey = []byte{tabEpoch, 'b'}

func breachKey(breachID string) []byte { return append([]byte{tabBreach}, breachID...) }
func tableKey(h [32]byte) []byte       { return append([]byte{tabTable}, h[:]...) }

// treeMeta is the 'm' record, written with every batch.
type treeMeta struct {
	size       uint64
	lastLeaf   []byte    // leaf hash of entry size-1 (nil when empty)
	lastTime   time.Time // recorded_at of entry size-1
	rangeNodes [][]byte  // compact range [0, size)
}

func (m *treeMeta) marshal() []byte {
	b := make([]byte, 0, 8+8+hashSize+len(m.rangeNodes)*hashSize)
	b = binary.BigEndian.AppendUint64(b, m.size)
	b = binary.BigEndian.AppendUint64(b, uint64(m.lastTime.UnixNano()))
	last := m.lastLeaf
	if last == nil {
		last = make([]byte, hashSize)
	}
	b = append(b, last...)
	for _, h := range m.rangeNodes {
		b = append(b, h...)
	}
	return b
}

func unmarshalMeta(b []byte) (*treeMeta, error) {
	if len(b) < 16+hashSize || (len(b)-16)%hashSize != 0 {
		return nil, fmt.Errorf("tree metadata: %d bytes is not a valid length", len(b))
	}
	m := &treeMeta{
		size:     binary.BigEndian.Uint64(b),
		lastTime: time.Unix(0, int64(binary.BigEndian.Uint64(b[8:]))).UTC(),
	}
	b = b[16:]
	if m.size > 0 {
		m.lastLeaf = append([]byte(nil), b[:hashSize]...)
	}
	for b = b[hashSize:]; len(b) > 0; b = b[hashSize:] {
		m.rangeNodes = append(m.rangeNodes, append([]byte(nil), b[:hashSize]...))
	}
	return m, nil
}

// idemRecord is the 'i' record: what a retry with the same key gets back.
type idemRecord struct {
	index      uint64
	leafHash   []byte
	recordedAt time.Time
	subjectID  string
}

func (r *idemRecord) marshal() []byte {
	b := make([]byte, 0, 8+hashSize+8+len(r.subjectID))
	b = binary.BigEndian.AppendUint64(b, r.index)
	b = append(b, r.leafHash...)
	b = binary.BigEndian.AppendUint64(b, uint64(r.recordedAt.UnixNano()))
	return append(b, r.subjectID...)
}

func unmarshalIdem(b []byte) (*idemRecord, error) {
	if len(b) < 8+hashSize+8 {
		return nil, fmt.Errorf("idempotency record: %d bytes is too short", len(b))
	}
	r := &idemRecord{
		index:      binary.BigEndian.Uint64(b),
		leafHash:   append([]byte(nil), b[8:8+hashSize]...),
		recordedAt: time.Unix(0, int64(binary.BigEndian.Uint64(b[8+hashSize:]))).UTC(),
	}
	r.subjectID = string(b[8+hashSize+8:])
	return r, nil
}
