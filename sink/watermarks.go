package sink

import (
	"context"
	"time"

	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// WatermarkWriter is implemented by sinks that keep delivery watermarks: a claim that every event
// of chainID with a timestamp at or below upTo has been acknowledged by this sink. A shared store
// that several sidecars write into uses them to serve only what is complete (the read horizon of
// plugins/clickhouse). The host calls WriteWatermark while delivery is caught up with the journal
// (an idle chain still advances its watermark); the sink derives the busy chain's watermark from
// the batches it stores, whose timestamps strictly increase with the sequence. Capabilities.Watermarks
// is set for such sinks. A failed call is not retried: the next one supersedes it.
type WatermarkWriter interface {
	WriteWatermark(ctx context.Context, chainID string, upTo time.Time) error
}

func (s *server) WriteWatermark(ctx context.Context, req *sinkpb.WriteWatermarkRequest) (*sinkpb.WriteWatermarkResponse, error) {
	w, ok := s.impl.(WatermarkWriter)
	if !ok {
		return nil, s.unsupported("write watermark")
	}
	if err := w.WriteWatermark(ctx, req.GetChainId(), time.UnixMicro(req.GetUpToMicros()).UTC()); err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.WriteWatermarkResponse{}, nil
}

// WriteWatermark implements WatermarkWriter; a plugin without it answers ErrUnsupported.
func (c *Client) WriteWatermark(ctx context.Context, chainID string, upTo time.Time) error {
	_, err := c.rpc.WriteWatermark(ctx, &sinkpb.WriteWatermarkRequest{ChainId: chainID, UpToMicros: upTo.UnixMicro()})
	return fromStatus(ctx, "write watermark", err)
}
