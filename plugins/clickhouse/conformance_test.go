package clickhouse

import (
	"testing"

	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

func TestConformance(t *testing.T) {
	t.Parallel()
	srv := server(t)
	sinktest.Run(t, func(t *testing.T) sink.Sink {
		return openSink(t, srv, newDatabase("conf"), Options{}, nil)
	})
}
