package sink

import (
	"context"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// Checkpoint is a signed checkpoint of a chain head as it crosses the plugin boundary (the fields
// of chain/checkpoint.Checkpoint; the signature covers chain id, sequence, hash and time, so a
// store cannot forge one without the sidecar's key).
type Checkpoint struct {
	ChainID   string
	Sequence  uint64
	Hash      string
	Time      time.Time
	KeyID     string
	Signature string
}

// CheckpointWriter is implemented by sinks that keep or forward signed checkpoints (a witness
// beside the events). The host sends every new checkpoint to each such sink, again after a
// failure, so WriteCheckpoints must be idempotent. Capabilities.Checkpoints is set for them.
type CheckpointWriter interface {
	WriteCheckpoints(ctx context.Context, cps []Checkpoint) error
}

// CheckpointReader is implemented by query sinks that keep checkpoints: verification uses them
// beside the checkpoint log, so it works without access to the sidecar's host.
type CheckpointReader interface {
	// ReadCheckpoints returns every stored checkpoint of chainID, in sequence order.
	ReadCheckpoints(ctx context.Context, chainID string) ([]Checkpoint, error)
}

func checkpointsToPB(cps []Checkpoint) []*sinkpb.Checkpoint {
	out := make([]*sinkpb.Checkpoint, len(cps))
	for i, c := range cps {
		out[i] = &sinkpb.Checkpoint{ChainId: c.ChainID, Sequence: c.Sequence, Hash: c.Hash,
			TimeMicros: c.Time.UnixMicro(), KeyId: c.KeyID, Signature: c.Signature}
	}
	return out
}

func checkpointsFromPB(ps []*sinkpb.Checkpoint) []Checkpoint {
	out := make([]Checkpoint, len(ps))
	for i, p := range ps {
		out[i] = Checkpoint{ChainID: p.GetChainId(), Sequence: p.GetSequence(), Hash: p.GetHash(),
			Time: time.UnixMicro(p.GetTimeMicros()).UTC(), KeyID: p.GetKeyId(), Signature: p.GetSignature()}
	}
	return out
}

func (s *server) WriteCheckpoints(ctx context.Context, req *sinkpb.WriteCheckpointsRequest) (*sinkpb.WriteCheckpointsResponse, error) {
	w, ok := s.impl.(CheckpointWriter)
	if !ok {
		return nil, s.unsupported("write checkpoints")
	}
	if err := w.WriteCheckpoints(ctx, checkpointsFromPB(req.GetCheckpoints())); err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.WriteCheckpointsResponse{}, nil
}

func (s *server) ReadCheckpoints(ctx context.Context, req *sinkpb.ReadCheckpointsRequest) (*sinkpb.ReadCheckpointsResponse, error) {
	r, ok := s.impl.(CheckpointReader)
	if !ok {
		return nil, s.unsupported("read checkpoints")
	}
	cps, err := r.ReadCheckpoints(ctx, req.GetChainId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.ReadCheckpointsResponse{Checkpoints: checkpointsToPB(cps)}, nil
}

// WriteCheckpoints implements CheckpointWriter; a plugin without it answers ErrUnsupported.
func (c *Client) WriteCheckpoints(ctx context.Context, cps []Checkpoint) error {
	_, err := c.rpc.WriteCheckpoints(ctx, &sinkpb.WriteCheckpointsRequest{Checkpoints: checkpointsToPB(cps)})
	return fromStatus(ctx, "write checkpoints", err)
}

// ReadCheckpoints implements CheckpointReader; a plugin without it answers ErrUnsupported.
func (c *Client) ReadCheckpoints(ctx context.Context, chainID string) ([]Checkpoint, error) {
	resp, err := c.rpc.ReadCheckpoints(ctx, &sinkpb.ReadCheckpointsRequest{ChainId: chainID})
	if err != nil {
		return nil, fromStatus(ctx, "read checkpoints", err)
	}
	return checkpointsFromPB(resp.GetCheckpoints()), nil
}
