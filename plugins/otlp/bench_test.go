package otlp

import (
	"fmt"
	"net"
	"testing"

	collogpb "go.opentelemetry.io/proto/otlp/collector/logs/v1"
	"google.golang.org/grpc"

	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// BenchmarkWrite measures the sink's Write in process into a fake OTLP/gRPC receiver on
// loopback (which decodes every request): the plugin's own cost per event, without the plugin
// boundary or a collector.
//
//	go test -run '^$' -bench 'BenchmarkWrite$' ./plugins/otlp/
func BenchmarkWrite(b *testing.B) {
	fake := &fakeReceiver{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := grpc.NewServer()
	collogpb.RegisterLogsServiceServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	b.Cleanup(srv.Stop)
	for _, size := range []int{1000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			s := newSink(b, map[string]any{"endpoint": "http://" + lis.Addr().String()})
			events := sinktest.GenerateChain("bench", size, sinktest.GenOptions{Seed: 1})
			next := uint64(0)
			written := 0
			for b.Loop() {
				for i := range events {
					next++
					events[i].Sequence = next
				}
				if err := s.Write(b.Context(), events); err != nil {
					b.Fatal(err)
				}
				written += len(events)
			}
			b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
