package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"

	pb "github.com/consentledger/consentledger/proto/consentledger/v1"
)

// DefaultWitnessWait bounds how long the witnessed-evidence commands wait.
const DefaultWitnessWait = 2 * time.Minute

// ErrNoWitnesses is returned when the server has no witnesses configured.
var ErrNoWitnesses = errors.New("the server has no witnesses configured (config `witnesses`), so no checkpoint will ever be cosigned")

// witnessed waits until a kept checkpoint of size minSize or larger carries
// the server's witness quorum, and returns it. progress gets one line when
// it has to wait.
func (c *Client) witnessed(ctx context.Context, minSize uint64, wait time.Duration, progress io.Writer, what string) (*pb.GetCheckpointResponse, error) {
	if wait <= 0 {
		wait = DefaultWitnessWait
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	said, signed := false, false
	for {
		latest, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{}))
		if err != nil {
			return nil, c.waitErr(ctx, err, minSize, wait, latest)
		}
		m := latest.Msg
		if len(m.Witnesses) == 0 {
			return nil, ErrNoWitnesses
		}
		if m.Size < minSize && !signed {
			// A checkpoint that covers what we need: sign one now.
			if _, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Sign: true})); err != nil {
				return nil, err
			}
			signed = true
			continue
		}
		// The sizes the witnesses last cosigned are the candidates: the
		// latest checkpoint may be newer than any cosignature.
		sizes := []uint64{m.Size}
		for _, w := range m.Witnesses {
			sizes = append(sizes, w.LastCosignedSize)
		}
		slices.Sort(sizes)
		for _, s := range slices.Compact(sizes) {
			if s < minSize {
				continue
			}
			r, err := c.Log.GetCheckpoint(ctx, connect.NewRequest(&pb.GetCheckpointRequest{Size: s}))
			if err != nil {
				continue // a size no longer kept, or a race with signing: try the next
			}
			if r.Msg.Cosignatures >= max(m.WitnessQuorum, 1) {
				return r.Msg, nil
			}
		}
		if !said && progress != nil {
			fmt.Fprintf(progress, "waiting up to %v for %d witness cosignatures on a checkpoint that covers %s…\n", wait, max(m.WitnessQuorum, 1), what)
			said = true
		}
		select {
		case <-ctx.Done():
			return nil, c.waitErr(ctx, ctx.Err(), minSize, wait, latest)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (c *Client) waitErr(ctx context.Context, err error, minSize uint64, wait time.Duration, last *connect.Response[pb.GetCheckpointResponse]) error {
	if ctx.Err() == nil || last == nil {
		return err
	}
	var ws []string
	for _, w := range last.Msg.Witnesses {
		s := fmt.Sprintf("%s: last cosigned size %d", w.Name, w.LastCosignedSize)
		if w.Alarm != "" {
			s += ", ALARM: " + w.Alarm
		} else if w.LastError != "" {
			s += ", last error: " + w.LastError
		}
		ws = append(ws, s)
	}
	return fmt.Errorf("no checkpoint of size %d or more carried %d witness cosignatures within %v (%s); try again later or with a longer --wait", minSize, last.Msg.WitnessQuorum, wait, strings.Join(ws, "; "))
}

// WitnessedEvidence waits (at most wait) until a checkpoint that covers
// the send decision at index carries the server's witness quorum, and
// returns the evidence bundle proven in that checkpoint: its field 1 is
// the cosigned checkpoint (README.md: Witnesses).
func (c *Client) WitnessedEvidence(ctx context.Context, index uint64, wait time.Duration, progress io.Writer) ([]byte, error) {
	cp, err := c.witnessed(ctx, index+1, wait, progress, fmt.Sprintf("decision %d", index))
	if err != nil {
		return nil, err
	}
	r, err := c.Log.GetEvidence(ctx, connect.NewRequest(&pb.GetEvidenceRequest{DecisionIndex: index, Size: cp.Size}))
	if err != nil {
		return nil, err
	}
	return marshalBundle(r.Msg.Bundle)
}

// UpgradeEvidence adds to an existing bundle (protojson) a later checkpoint
// that carries the server's witness quorum, with the consistency proof from
// the bundle's checkpoint to it (field 7; README.md: Witnesses). Nothing in
// fields 1–6 changes, so the bundle proves what it proved before, and now
// also when its entries existed at the latest.
func (c *Client) UpgradeEvidence(ctx context.Context, bundleJSON []byte, wait time.Duration, progress io.Writer) ([]byte, error) {
	var b pb.EvidenceBundle
	if err := protojson.Unmarshal(bundleJSON, &b); err != nil {
		return nil, fmt.Errorf("not an evidence bundle: %w", err)
	}
	lines := strings.SplitN(b.Checkpoint, "\n", 3)
	if len(lines) < 3 {
		return nil, errors.New("the bundle's checkpoint is not a checkpoint note")
	}
	size, err := strconv.ParseUint(lines[1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("the bundle's checkpoint has no tree size: %w", err)
	}
	cp, err := c.witnessed(ctx, size, wait, progress, fmt.Sprintf("the bundle's checkpoint of size %d", size))
	if err != nil {
		return nil, err
	}
	w := &pb.WitnessedCheckpoint{Checkpoint: cp.Checkpoint}
	if cp.Size > size {
		p, err := c.Log.GetConsistencyProof(ctx, connect.NewRequest(&pb.GetConsistencyProofRequest{Size1: size, Size2: cp.Size}))
		if err != nil {
			return nil, err
		}
		w.ConsistencyProof = p.Msg.Proof
	}
	b.Witnessed = w
	return marshalBundle(&b)
}

func marshalBundle(b *pb.EvidenceBundle) ([]byte, error) {
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, err
	}
	return append(out, '\n'), nil
}
