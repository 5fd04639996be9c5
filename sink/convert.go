package sink

import (
	"encoding/json"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// eventToPB fills dst from e. Context and metadata are copied by reference (they are not modified).
func eventToPB(e *chain.Event, dst *sinkpb.Event, actor *sinkpb.Actor) {
	actor.Type, actor.Id, actor.IpAddress = e.Actor.Type, e.Actor.ID, e.Actor.IPAddress
	dst.EventId = e.EventID
	dst.EventType = e.EventType
	dst.Action = e.Action
	dst.Result = e.Result
	dst.ResourceId = e.ResourceID
	dst.ResourceType = e.ResourceType
	dst.Actor = actor
	dst.Context = e.Context
	dst.Metadata = e.Metadata
	dst.TimestampMicros = e.Timestamp.UnixMicro()
	dst.Hash = e.Hash
	dst.PreviousHash = e.PreviousHash
	dst.ChainId = e.ChainID
	dst.Sequence = e.Sequence
	dst.ConflictingDuplicate = e.ConflictingDuplicate
}

// eventsToPB converts a batch with three allocations in total.
func eventsToPB(events []chain.Event) []*sinkpb.Event {
	out := make([]*sinkpb.Event, len(events))
	pbs := make([]sinkpb.Event, len(events))
	actors := make([]sinkpb.Actor, len(events))
	for i := range events {
		eventToPB(&events[i], &pbs[i], &actors[i])
		out[i] = &pbs[i]
	}
	return out
}

func newEventPB(e *chain.Event) *sinkpb.Event {
	p, a := new(sinkpb.Event), new(sinkpb.Actor)
	eventToPB(e, p, a)
	return p
}

// eventFromPB converts p into dst. An empty context or metadata becomes nil.
func eventFromPB(p *sinkpb.Event, dst *chain.Event) {
	*dst = chain.Event{
		EventID:      p.GetEventId(),
		EventType:    p.GetEventType(),
		Action:       p.GetAction(),
		Result:       p.GetResult(),
		ResourceID:   p.GetResourceId(),
		ResourceType: p.GetResourceType(),
		Actor: chain.Actor{
			Type:      p.GetActor().GetType(),
			ID:        p.GetActor().GetId(),
			IPAddress: p.GetActor().GetIpAddress(),
		},
		Context:      rawOrNil(p.GetContext()),
		Metadata:     rawOrNil(p.GetMetadata()),
		Timestamp:    time.UnixMicro(p.GetTimestampMicros()).UTC(),
		Hash:         p.GetHash(),
		PreviousHash: p.GetPreviousHash(),
		ChainID:      p.GetChainId(),
		Sequence:     p.GetSequence(),

		ConflictingDuplicate: p.GetConflictingDuplicate(),
	}
}

func eventsFromPB(ps []*sinkpb.Event) []chain.Event {
	out := make([]chain.Event, len(ps))
	for i, p := range ps {
		eventFromPB(p, &out[i])
	}
	return out
}

func rawOrNil(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

func filterToPB(f *Filter) *sinkpb.Filter {
	out := &sinkpb.Filter{
		EventType:    f.EventType,
		Action:       f.Action,
		Result:       f.Result,
		ResourceType: f.ResourceType,
		ResourceId:   f.ResourceID,
		ActorType:    f.ActorType,
		ActorId:      f.ActorID,
	}
	if !f.From.IsZero() {
		v := f.From.UnixMicro()
		out.FromMicros = &v
	}
	if !f.To.IsZero() {
		v := f.To.UnixMicro()
		out.ToMicros = &v
	}
	return out
}

func filterFromPB(p *sinkpb.Filter) Filter {
	f := Filter{
		EventType:    p.GetEventType(),
		Action:       p.GetAction(),
		Result:       p.GetResult(),
		ResourceType: p.GetResourceType(),
		ResourceID:   p.GetResourceId(),
		ActorType:    p.GetActorType(),
		ActorID:      p.GetActorId(),
	}
	if p.FromMicros != nil {
		f.From = time.UnixMicro(*p.FromMicros).UTC()
	}
	if p.ToMicros != nil {
		f.To = time.UnixMicro(*p.ToMicros).UTC()
	}
	return f
}

func queryToPB(q *Query) *sinkpb.SearchRequest {
	req := &sinkpb.SearchRequest{Filter: filterToPB(&q.Filter), Limit: int32(min(max(q.Limit, 0), 1<<30))}
	if q.Order == Asc {
		req.Order = sinkpb.Order_ORDER_ASC
	}
	if q.After != nil {
		req.After = &sinkpb.Position{TimeMicros: q.After.TimeMicros, ChainId: q.After.ChainID, Sequence: q.After.Sequence}
	}
	return req
}

func queryFromPB(req *sinkpb.SearchRequest) Query {
	q := Query{Filter: filterFromPB(req.GetFilter()), Limit: int(req.GetLimit())}
	if req.GetOrder() == sinkpb.Order_ORDER_ASC {
		q.Order = Asc
	}
	if a := req.GetAfter(); a != nil {
		q.After = &Position{TimeMicros: a.GetTimeMicros(), ChainID: a.GetChainId(), Sequence: a.GetSequence()}
	}
	return q
}
