package auditapi

import (
	"context"
	"errors"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
)

// anchorReader is implemented by query sinks that keep retention anchors (sink.Retainer).
type anchorReader interface {
	ReadAnchors(ctx context.Context, chainID string) ([]sink.RetentionAnchor, error)
}

// addAnchors adds the query sink's retention anchors of chainID to the evidence: verification
// starts after the newest one whose signature checks (chain/checkpoint.Verify).
func (a *API) addAnchors(ctx context.Context, q sink.Querier, chainID string, ev *checkpoint.Evidence) {
	ar, ok := q.(anchorReader)
	if !ok {
		return
	}
	as, err := ar.ReadAnchors(ctx, chainID)
	if err != nil {
		if !errors.Is(err, sink.ErrUnsupported) {
			a.log.Warn("audit api: reading the query sink's retention anchors", "err", err)
		}
		return
	}
	for _, an := range as {
		ev.AddAnchors(checkpoint.Anchor(an))
	}
}
