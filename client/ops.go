package client

import (
	"context"
	"fmt"
	"io"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/consentledger/consentledger/export"
	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// Evidence returns the evidence bundle of the send decision at index as
// protojson (DESIGN §8), indented for people.
func (c *Client) Evidence(ctx context.Context, index uint64) ([]byte, error) {
	r, err := c.Log.GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: index}))
	if err != nil {
		return nil, err
	}
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(r.Msg.Bundle)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Export writes the whole log in the export format (package export): a
// checkpoint signed now, then every entry it covers. progress, if not nil,
// gets a line every second.
func (c *Client) Export(ctx context.Context, w io.Writer, progress io.Writer) (uint64, error) {
	cp, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		return 0, err
	}
	size := cp.Msg.Size
	ew, err := export.NewWriter(w, []byte(cp.Msg.Checkpoint), size)
	if err != nil {
		return 0, err
	}
	last := time.Now()
	start := last
	for next := uint64(0); next < size; {
		r, err := c.Log.GetEntries(ctx, connect.NewRequest(&pb.GetEntriesRequest{Start: next, Count: uint32(min(1000, size-next))}))
		if err != nil {
			return next, err
		}
		if len(r.Msg.Entries) == 0 {
			return next, fmt.Errorf("the server returned no entries at %d of %d", next, size)
		}
		for _, e := range r.Msg.Entries {
			if e.Index != next {
				return next, fmt.Errorf("the server returned entry %d where %d was expected", e.Index, next)
			}
			if next >= size {
				break
			}
			if err := ew.WriteEntry(e.Entry); err != nil {
				return next, err
			}
			next++
		}
		if progress != nil && time.Since(last) >= time.Second {
			last = time.Now()
			fmt.Fprintf(progress, "exported %d of %d entries (%.0f%%)\n", next, size, 100*float64(next)/float64(size))
		}
	}
	if err := ew.Close(); err != nil {
		return size, err
	}
	if progress != nil {
		fmt.Fprintf(progress, "exported %d entries and the checkpoint of size %d in %v\n", size, size, time.Since(start).Round(time.Millisecond))
	}
	return size, nil
}
