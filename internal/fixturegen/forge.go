package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/formats/log"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"

	"github.com/consentledger/consentledger/export"
	"github.com/consentledger/consentledger/ledger"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// forgedLog is a log rewritten by someone who holds the signing key: the
// entries are changed and re-chained, the tree rebuilt and a checkpoint
// signed, so that signatures and inclusion proofs verify and only the
// content checks can tell.
type forgedLog struct {
	entries [][]byte
	tree    *testonly.Tree
	signer  note.Signer
	cp      []byte
}

// newForgedLog applies change to each decoded entry (it reports whether it
// changed anything), then re-chains the log: prev_hash, subject_prev_hash
// and consent_head_hash follow the rewritten entries.
func newForgedLog(entries [][]byte, signer note.Signer, change func(i uint64, e *pb.Entry) bool) *forgedLog {
	renamed := map[string][]byte{} // old leaf hash -> new
	out := make([][]byte, len(entries))
	prev := make([]byte, 32)
	for i, data := range entries {
		old := ledger.LeafHash(data)
		e := decode(data)
		changed := change(uint64(i), e)
		if !bytes.Equal(e.PrevHash, prev) {
			e.PrevHash, changed = prev, true
		}
		if n, ok := renamed[string(e.SubjectPrevHash)]; ok && !bytes.Equal(n, e.SubjectPrevHash) {
			e.SubjectPrevHash, changed = n, true
		}
		if n, ok := renamed[string(e.ConsentHeadHash)]; ok && !bytes.Equal(n, e.ConsentHeadHash) {
			e.ConsentHeadHash, changed = n, true
		}
		if changed {
			data = marshal(e)
		}
		out[i] = data
		prev = ledger.LeafHash(data)
		renamed[string(old)] = prev
	}
	f := &forgedLog{entries: out, tree: testonly.New(rfc6962.DefaultHasher), signer: signer}
	f.tree.AppendData(out...)
	f.cp = sign(signer, f.tree.Size(), f.tree.Hash())
	return f
}

func sign(signer note.Signer, size uint64, root []byte) []byte {
	body := log.Checkpoint{Origin: signer.Name(), Size: size, Hash: root}.Marshal()
	return must(note.Sign(&note.Note{Text: string(body)}, signer))
}

func (f *forgedLog) checkpoint() []byte { return f.cp }

func (f *forgedLog) prove(i uint64) *pb.ProvenEntry {
	return &pb.ProvenEntry{Index: i, Entry: f.entries[i], InclusionProof: must(f.tree.InclusionProof(i, f.tree.Size()))}
}

// bundle builds the evidence bundle of a decision as rpc.Evidence does.
func (f *forgedLog) bundle(index uint64) (*pb.EvidenceBundle, error) {
	e := decode(f.entries[index])
	d := e.GetSendDecision()
	if d == nil {
		return nil, fmt.Errorf("entry %d is not a decision", index)
	}
	b := &pb.EvidenceBundle{Checkpoint: string(f.cp), Decision: f.prove(index)}
	if len(d.ConsentIndexes) > 0 && e.ConsentHeadIndex != nil {
		grant := d.ConsentIndexes[0]
		var chain []*pb.ProvenEntry
		for at := *e.ConsentHeadIndex; ; {
			chain = append([]*pb.ProvenEntry{f.prove(at)}, chain...)
			if at == grant {
				break
			}
			ce := decode(f.entries[at])
			if ce.SubjectPrevIndex == nil || *ce.SubjectPrevIndex < grant {
				return nil, fmt.Errorf("the chain from %d does not lead back to %d", *e.ConsentHeadIndex, grant)
			}
			at = *ce.SubjectPrevIndex
		}
		b.Chain = chain
	}
	b.Policy = f.prove(d.PolicyIndex)
	return b, nil
}

func (f *forgedLog) export() []byte {
	var b bytes.Buffer
	w := must(export.NewWriter(&b, f.cp, uint64(len(f.entries))))
	for _, e := range f.entries {
		if err := w.WriteEntry(e); err != nil {
			panic(err)
		}
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return b.Bytes()
}

// readSigner reads the ledger's signing key from its data directory: the
// generator plays the dishonest operator.
func readSigner(dataDir string) (note.Signer, error) {
	raw, err := os.ReadFile(filepath.Join(dataDir, ledger.SigningKeyFile))
	if err != nil {
		return nil, err
	}
	return note.NewSigner(strings.TrimSpace(string(raw)))
}

func newSigner(name string) note.Signer {
	skey, _, err := note.GenerateKey(rand.Reader, name)
	if err != nil {
		panic(err)
	}
	return must(note.NewSigner(skey))
}

// cosign adds a signature line by s to a signed note (a witness's
// cosignature): the log's own signature stays valid.
func cosign(signed string, s note.Signer) string {
	text := signed[:strings.LastIndex(signed, "\n\n")+1]
	extra := must(note.Sign(&note.Note{Text: text}, s))
	return signed + string(extra[len(text)+1:])
}
