package sink

import (
	"context"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// RetentionAnchor is a signed retention anchor as it crosses the plugin boundary (the fields of
// chain/checkpoint.Anchor): the last event of a chain removed by retention, signed by the
// sidecar's checkpoint key, so that verification can start after it and a store cannot claim a
// removal nobody with the key signed.
type RetentionAnchor struct {
	ChainID   string
	Sequence  uint64 // the last removed event
	Hash      string // its hash
	Cutoff    time.Time
	Time      time.Time
	KeyID     string
	Signature string
}

// NewestAnchor returns the newest of a chain's anchors as the head they stand for (Found false:
// none): what a sink reports as its head once retention removed every event up to it.
func NewestAnchor(anchors []RetentionAnchor) Head {
	var h Head
	for _, a := range anchors {
		if !h.Found || a.Sequence > h.Sequence {
			h = Head{Found: true, Sequence: a.Sequence, Hash: a.Hash}
		}
	}
	return h
}

// RetentionResult says what one Retain call removed.
type RetentionResult struct {
	Events uint64 // events removed
	Blocks uint64 // whole blocks of the sink's storage removed (delete batches, partitions, files)
}

// Retainer is implemented by sinks that can remove old events (the sink's `retention` setting).
// The host drives it in the background: it computes how far every sink has acknowledged the
// journal, asks PlanRetention for the newest event the sink can remove in whole blocks, signs a
// retention anchor of that event, and calls Retain. Capabilities.Retention is set for them; the
// sidecar refuses `retention` for a sink whose plugin does not implement it.
type Retainer interface {
	// PlanRetention returns the newest stored event of chainID that retention may remove: its
	// sequence is at most upTo, it and every earlier stored event of the chain are older than
	// cutoff, and it ends a whole block of the sink's storage (so Retain removes blocks, never
	// part of one). Found false when nothing can be removed now.
	PlanRetention(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) (Head, error)
	// Retain durably stores anchor first, then removes every event of anchor.ChainID with a
	// sequence at or below anchor.Sequence (in the blocks PlanRetention counted on). It must be
	// idempotent: after a failure the host calls it again with the same anchor. Once events are
	// removed, Head must still answer the chain's head (the anchor, when no event is left).
	Retain(ctx context.Context, anchor RetentionAnchor) (RetentionResult, error)
	// ReadAnchors returns the stored anchors of chainID in sequence order.
	ReadAnchors(ctx context.Context, chainID string) ([]RetentionAnchor, error)
}

func anchorToPB(a RetentionAnchor) *sinkpb.RetentionAnchor {
	return &sinkpb.RetentionAnchor{ChainId: a.ChainID, Sequence: a.Sequence, Hash: a.Hash,
		CutoffMicros: a.Cutoff.UnixMicro(), TimeMicros: a.Time.UnixMicro(), KeyId: a.KeyID, Signature: a.Signature}
}

func anchorFromPB(p *sinkpb.RetentionAnchor) RetentionAnchor {
	return RetentionAnchor{ChainID: p.GetChainId(), Sequence: p.GetSequence(), Hash: p.GetHash(),
		Cutoff: time.UnixMicro(p.GetCutoffMicros()).UTC(), Time: time.UnixMicro(p.GetTimeMicros()).UTC(),
		KeyID: p.GetKeyId(), Signature: p.GetSignature()}
}

func (s *server) PlanRetention(ctx context.Context, req *sinkpb.PlanRetentionRequest) (*sinkpb.HeadResponse, error) {
	r, ok := s.impl.(Retainer)
	if !ok {
		return nil, s.unsupported("plan retention")
	}
	h, err := r.PlanRetention(ctx, req.GetChainId(), time.UnixMicro(req.GetCutoffMicros()).UTC(), req.GetUpTo())
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.HeadResponse{Found: h.Found, Sequence: h.Sequence, Hash: h.Hash}, nil
}

func (s *server) Retain(ctx context.Context, req *sinkpb.RetainRequest) (*sinkpb.RetainResponse, error) {
	r, ok := s.impl.(Retainer)
	if !ok {
		return nil, s.unsupported("retain")
	}
	res, err := r.Retain(ctx, anchorFromPB(req.GetAnchor()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.RetainResponse{Events: res.Events, Blocks: res.Blocks}, nil
}

func (s *server) ReadAnchors(ctx context.Context, req *sinkpb.ReadAnchorsRequest) (*sinkpb.ReadAnchorsResponse, error) {
	r, ok := s.impl.(Retainer)
	if !ok {
		return nil, s.unsupported("read anchors")
	}
	as, err := r.ReadAnchors(ctx, req.GetChainId())
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*sinkpb.RetentionAnchor, len(as))
	for i, a := range as {
		out[i] = anchorToPB(a)
	}
	return &sinkpb.ReadAnchorsResponse{Anchors: out}, nil
}

// PlanRetention implements Retainer; a plugin without it answers ErrUnsupported.
func (c *Client) PlanRetention(ctx context.Context, chainID string, cutoff time.Time, upTo uint64) (Head, error) {
	resp, err := c.rpc.PlanRetention(ctx, &sinkpb.PlanRetentionRequest{ChainId: chainID, CutoffMicros: cutoff.UnixMicro(), UpTo: upTo})
	if err != nil {
		return Head{}, fromStatus(ctx, "plan retention", err)
	}
	return Head{Found: resp.GetFound(), Sequence: resp.GetSequence(), Hash: resp.GetHash()}, nil
}

// Retain implements Retainer; a plugin without it answers ErrUnsupported.
func (c *Client) Retain(ctx context.Context, a RetentionAnchor) (RetentionResult, error) {
	resp, err := c.rpc.Retain(ctx, &sinkpb.RetainRequest{Anchor: anchorToPB(a)})
	if err != nil {
		return RetentionResult{}, fromStatus(ctx, "retain", err)
	}
	return RetentionResult{Events: resp.GetEvents(), Blocks: resp.GetBlocks()}, nil
}

// ReadAnchors implements Retainer; a plugin without it answers ErrUnsupported.
func (c *Client) ReadAnchors(ctx context.Context, chainID string) ([]RetentionAnchor, error) {
	resp, err := c.rpc.ReadAnchors(ctx, &sinkpb.ReadAnchorsRequest{ChainId: chainID})
	if err != nil {
		return nil, fromStatus(ctx, "read anchors", err)
	}
	out := make([]RetentionAnchor, len(resp.GetAnchors()))
	for i, p := range resp.GetAnchors() {
		out[i] = anchorFromPB(p)
	}
	return out, nil
}
