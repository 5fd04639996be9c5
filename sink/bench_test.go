package sink

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkWriteNullsink measures events per second through the plugin boundary (protobuf
// encoding, gRPC over mutual TLS, decoding in the plugin) into the example nullsink plugin,
// with events of about 1 KiB of context.
//
//	go test -run '^$' -bench WriteNullsink -benchtime 3s ./sink/
func BenchmarkWriteNullsink(b *testing.B) {
	bin := nullsinkPath(b)
	ctx := context.Background()
	c, err := Open(ctx, LaunchOptions{Path: bin})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Kill()
	if err := c.Configure(ctx, nil); err != nil {
		b.Fatal(err)
	}
	next := uint64(0)
	for _, size := range []int{500, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			events := testEvents("bench", size, 1024)
			bytes := 0
			for i := range events {
				bytes += approxSize(&events[i])
			}
			b.SetBytes(int64(bytes))
			written := 0
			for b.Loop() {
				for i := range events { // new sequences, so the sink does not skip them
					next++
					events[i].Sequence = next
				}
				if err := c.Write(ctx, events); err != nil {
					b.Fatal(err)
				}
				written += len(events)
			}
			b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
