package sink

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// server adapts a Sink (and optionally a Querier) to the generated gRPC service.
type server struct {
	sinkpb.UnimplementedSinkServer
	impl Sink
	q    Querier // nil when impl cannot answer queries
}

func newServer(impl Sink) *server {
	s := &server{impl: impl}
	if q, ok := impl.(Querier); ok {
		s.q = q
	}
	return s
}

func (s *server) Configure(ctx context.Context, req *sinkpb.ConfigureRequest) (*sinkpb.ConfigureResponse, error) {
	if err := s.impl.Configure(ctx, req.GetConfig()); err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.ConfigureResponse{}, nil
}

func (s *server) Capabilities(ctx context.Context, _ *sinkpb.CapabilitiesRequest) (*sinkpb.CapabilitiesResponse, error) {
	caps, err := s.impl.Capabilities(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	_, cpw := s.impl.(CheckpointWriter)
	_, ret := s.impl.(Retainer)
	_, wmw := s.impl.(WatermarkWriter)
	return &sinkpb.CapabilitiesResponse{Write: caps.Write, Query: caps.Query && s.q != nil, Checkpoints: cpw, Retention: ret, Watermarks: wmw}, nil
}

func (s *server) Write(ctx context.Context, req *sinkpb.WriteRequest) (*sinkpb.WriteResponse, error) {
	if err := s.impl.Write(ctx, eventsFromPB(req.GetEvents())); err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.WriteResponse{}, nil
}

func (s *server) Head(ctx context.Context, req *sinkpb.HeadRequest) (*sinkpb.HeadResponse, error) {
	h, err := s.impl.Head(ctx, req.GetChainId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.HeadResponse{Found: h.Found, Sequence: h.Sequence, Hash: h.Hash}, nil
}

func (s *server) unsupported(op string) error {
	return status.Error(codes.Unimplemented, fmt.Sprintf("%s: %v", op, ErrUnsupported))
}

func (s *server) Search(ctx context.Context, req *sinkpb.SearchRequest) (*sinkpb.SearchResponse, error) {
	if s.q == nil {
		return nil, s.unsupported("search")
	}
	page, err := s.q.Search(ctx, queryFromPB(req))
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.SearchResponse{Events: eventsToPB(page.Events), More: page.More}, nil
}

func (s *server) Get(ctx context.Context, req *sinkpb.GetRequest) (*sinkpb.GetResponse, error) {
	if s.q == nil {
		return nil, s.unsupported("get")
	}
	e, err := s.q.Get(ctx, req.GetEventId())
	if err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.GetResponse{Event: newEventPB(&e)}, nil
}

func (s *server) ReadChain(req *sinkpb.ReadChainRequest, stream sinkpb.Sink_ReadChainServer) error {
	if s.q == nil {
		return s.unsupported("read chain")
	}
	err := s.q.ReadChain(stream.Context(), req.GetChainId(), req.GetFrom(), req.GetTo(), func(e *chain.Event) error {
		return stream.Send(newEventPB(e))
	})
	return toStatus(err)
}

func (s *server) Chains(ctx context.Context, _ *sinkpb.ChainsRequest) (*sinkpb.ChainsResponse, error) {
	if s.q == nil {
		return nil, s.unsupported("chains")
	}
	infos, err := s.q.Chains(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	out := make([]*sinkpb.ChainInfo, len(infos))
	for i, c := range infos {
		out[i] = &sinkpb.ChainInfo{ChainId: c.ChainID, Count: c.Count, First: c.First, Last: c.Last}
	}
	return &sinkpb.ChainsResponse{Chains: out}, nil
}

func (s *server) Close(ctx context.Context, _ *sinkpb.CloseRequest) (*sinkpb.CloseResponse, error) {
	if err := s.impl.Close(ctx); err != nil {
		return nil, toStatus(err)
	}
	return &sinkpb.CloseResponse{}, nil
}
