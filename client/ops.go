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
// protojson (docs/entry-format.md: Evidence bundles), indented for people.
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
// checkpoint signed now, every checkpoint the server kept up to it with the
// witness cosignatures stored for it (format v2; v1 from a server without
// ListCheckpoints), then every entry it covers. progress, if not nil, gets
// a line every second.
func (c *Client) Export(ctx context.Context, w io.Writer, progress io.Writer) (uint64, error) {
	cp, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true}))
	if err != nil {
		return 0, err
	}
	size := cp.Msg.Size
	kept, err := c.keptCheckpoints(ctx, size)
	var ew *export.Writer
	switch {
	case connect.CodeOf(err) == connect.CodeUnimplemented:
		ew, err = export.NewWriter(w, []byte(cp.Msg.Checkpoint), size)
	case err != nil:
		return 0, err
	default:
		ew, err = export.NewWriterV2(w, []byte(cp.Msg.Checkpoint), size, kept)
	}
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

// keptCheckpoints returns every kept checkpoint up to size, with its
// cosignatures, in order of size.
func (c *Client) keptCheckpoints(ctx context.Context, size uint64) ([][]byte, error) {
	var out [][]byte
	for next := uint64(0); next <= size; {
		r, err := c.Log.ListCheckpoints(ctx, connect.NewRequest(&pb.ListCheckpointsRequest{StartSize: next, Count: 1000}))
		if err != nil {
			return nil, err
		}
		if len(r.Msg.Checkpoints) == 0 {
			break
		}
		for _, cp := range r.Msg.Checkpoints {
			if cp.Size < next {
				return nil, fmt.Errorf("the server listed the checkpoint of size %d after asking from %d", cp.Size, next)
			}
			if cp.Size > size {
				return out, nil
			}
			out = append(out, []byte(cp.Checkpoint))
			next = cp.Size + 1
		}
	}
	return out, nil
}
