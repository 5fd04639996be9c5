package main

import (
	"context"

	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/sink"
)

// addSinkAnchors adds the query sink's signed retention anchors of chainID to the evidence, so
// that a store that applied retention is verified from its newest valid anchor (and an anchor
// nobody with the key signed is reported). A plugin without retention has none.
func addSinkAnchors(ctx context.Context, c *sink.Client, chainID string, ev *checkpoint.Evidence) {
	if ev == nil {
		return
	}
	as, err := c.ReadAnchors(ctx, chainID)
	if err != nil {
		return // sink.ErrUnsupported, or unreadable: verification then starts from the genesis
	}
	for _, a := range as {
		ev.AddAnchors(checkpoint.Anchor(a))
	}
}
