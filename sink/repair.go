package sink

import (
	"context"

	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// RowRef names one stored row of a chain: its sequence and its hash. Several rows may share a
// sequence (an inserted duplicate); the hash tells them apart.
type RowRef struct {
	Sequence uint64
	Hash     string
}

// Repairer is implemented by sinks whose store an operator can repair after a conflict
// (`flowker-audit sink repair`, with the sidecar stopped). The host never calls it.
type Repairer interface {
	// DropRows removes the stored rows of chainID that rows name (a row is removed only when
	// both its sequence and its hash match, so a genuine row at the same sequence stays), then
	// makes any summary the store keeps (head, counts) agree with the rows left, also when rows
	// is empty (a forged summary). It returns how many rows it removed, once the removal is
	// durable and visible to Head and ReadChain.
	DropRows(ctx context.Context, chainID string, rows []RowRef) (int, error)
}

func (s *server) DropRows(ctx context.Context, req *sinkpb.DropRowsRequest) (*sinkpb.DropRowsResponse, error) {
	r, ok := s.impl.(Repairer)
	if !ok {
		return nil, s.unsupported("drop rows")
	}
	refs := make([]RowRef, len(req.GetRows()))
	for i, p := range req.GetRows() {
		refs[i] = RowRef{Sequence: p.GetSequence(), Hash: p.GetHash()}
	}
	n, err := r.DropRows(ctx, req.GetChainId(), refs)
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.DropRowsResponse{Dropped: uint64(n)}, nil
}

// DropRows implements Repairer; a plugin without it answers ErrUnsupported.
func (c *Client) DropRows(ctx context.Context, chainID string, rows []RowRef) (int, error) {
	req := &sinkpb.DropRowsRequest{ChainId: chainID, Rows: make([]*sinkpb.RowRef, len(rows))}
	for i, r := range rows {
		req.Rows[i] = &sinkpb.RowRef{Sequence: r.Sequence, Hash: r.Hash}
	}
	resp, err := c.rpc.DropRows(ctx, req)
	if err != nil {
		return 0, fromStatus(ctx, "drop rows", err)
	}
	return int(resp.GetDropped()), nil
}
