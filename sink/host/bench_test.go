package host

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host/internal/memsource"
)

// BenchmarkDeliveryNullsink measures events per second delivered by a Supervisor from an
// in-memory journal into the example nullsink plugin (batching, gRPC over mutual TLS, acks),
// with events of about 1 KiB of context.
//
//	go test -run '^$' -bench DeliveryNullsink ./sink/host/
func BenchmarkDeliveryNullsink(b *testing.B) {
	bin := nullsinkPath(b)
	const chunk = 20000 // a multiple of every batch size, so no batch waits to fill
	for _, size := range []int{500, 1000, 5000} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			src := memsource.New("bench")
			cfg := SinkConfig{Name: "bench", Launch: sink.LaunchOptions{Path: bin}, Config: []byte(`{}`), BatchSize: size}
			sup := NewSupervisor(cfg, src, nil, nil)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- sup.Run(ctx) }()
			defer func() {
				cancel()
				<-done
			}()
			for ok := false; !ok; ok, _ = sup.Ready() {
				time.Sleep(time.Millisecond)
			}
			delivered := 0
			for b.Loop() {
				b.StopTimer()
				last := src.Append(chunk, 1024)
				b.StartTimer()
				for {
					if c, _ := src.Cursor("bench"); c >= last {
						break
					}
					time.Sleep(200 * time.Microsecond)
				}
				delivered += chunk
			}
			b.ReportMetric(float64(delivered)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
