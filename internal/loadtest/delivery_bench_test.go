package loadtest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/journal"
	"github.com/flowker-audit/flowker-audit/internal/otelcoltest"
	"github.com/flowker-audit/flowker-audit/internal/rsyslogtest"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
	"github.com/flowker-audit/flowker-audit/sink"
	"github.com/flowker-audit/flowker-audit/sink/host"
	"github.com/flowker-audit/flowker-audit/sink/sinktest"
)

// gatedSource is a real journal whose events become visible to the supervisor only when the
// gate opens, so that a benchmark times delivery alone: the plugin is started and configured,
// and the journal filled, before the clock starts.
type gatedSource struct {
	*journal.Journal
	open   chan struct{}
	gate   atomic.Uint64
	opened sync.Once
}

func newGatedSource(j *journal.Journal) *gatedSource {
	return &gatedSource{Journal: j, open: make(chan struct{})}
}

func (g *gatedSource) Open() {
	g.opened.Do(func() {
		g.gate.Store(g.Journal.Last())
		close(g.open)
	})
}

func (g *gatedSource) Last() uint64 { return min(g.Journal.Last(), g.gate.Load()) }

func (g *gatedSource) Wait(ctx context.Context, after uint64) error {
	if g.Last() > after {
		return nil
	}
	select {
	case <-g.open:
		if g.Last() > after {
			return nil
		}
		<-ctx.Done() // nothing more will ever become visible
		return ctx.Err()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (g *gatedSource) Read(ctx context.Context, from uint64, max, maxBytes int) ([]chain.Event, error) {
	evs, err := g.Journal.Read(ctx, from, max, maxBytes)
	gate := g.gate.Load()
	for i := range evs {
		if evs[i].Sequence > gate {
			return evs[:i], err
		}
	}
	return evs, err
}

var _ host.Source = (*gatedSource)(nil)

// pluginBinaries returns how to start the bundled SQLite plugin (FLOWKER_AUDIT_BIN, or a fresh
// build of cmd/flowker-audit) and the example nullsink plugin (built once).
func pluginBinaries(b *testing.B) (flowkerAudit, nullsink string) {
	flowkerAudit = os.Getenv("FLOWKER_AUDIT_BIN")
	if flowkerAudit == "" {
		flowkerAudit = testenv.Binary(b)
	} else if !filepath.IsAbs(flowkerAudit) {
		// Relative to the repository root, as make and bench.sh run from there.
		flowkerAudit = filepath.Join(testenv.ModuleRoot(b), flowkerAudit)
	}
	if _, err := os.Stat(flowkerAudit); err != nil {
		b.Fatalf("FLOWKER_AUDIT_BIN: %v", err)
	}
	nullsink = filepath.Join(b.TempDir(), "nullsink")
	cmd := exec.Command("go", "build", "-o", nullsink, "./sink/examples/nullsink")
	cmd.Dir = testenv.ModuleRoot(b)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building nullsink: %v\n%s", err, out)
	}
	return flowkerAudit, nullsink
}

// fillJournal appends n drafts made from generated events (0.5–2 KiB of context each) to a new
// journal without fsync, with 64 concurrent appenders.
func fillJournal(b *testing.B, path string, n int) *journal.Journal {
	j, _, err := journal.Open(journal.Options{Path: path, NoSync: true, MaxBytes: 32 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	events := sinktest.GenerateChain("bench", min(n, 4096), sinktest.GenOptions{Seed: 11})
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				e := events[i%int64(len(events))]
				d := journal.Draft{EventID: uuid.NewString(), EventType: e.EventType, Action: e.Action,
					Result: e.Result, ResourceID: e.ResourceID, ResourceType: e.ResourceType, Actor: e.Actor,
					Context: e.Context, Metadata: e.Metadata}
				if _, err := j.Append(context.Background(), d); err != nil {
					failed.Store(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	return j
}

// BenchmarkDeliveryPlugin measures events per second delivered by the sidecar's Supervisor
// from a real journal through the plugin boundary (protobuf, gRPC over mutual TLS, another
// process) into the example nullsink plugin and into the bundled SQLite plugin
// (`flowker-audit plugin sqlite`, its default synchronous=full: one fsync per batch), for the
// batch sizes the host can be configured with. Each iteration delivers the whole journal
// (FLOWKER_AUDIT_BENCH_DELIVERY_EVENTS, default 50,000 events of about 1 KiB) to a fresh sink;
// the clock runs from the moment the events become visible to the acknowledgement of the last.
// It also delivers into the forwarding plugins: `flowker-audit plugin syslog` into rsyslogd over
// TCP and `flowker-audit plugin otlp` into an OpenTelemetry Collector over OTLP/gRPC and
// OTLP/HTTP (internal/rsyslogtest, internal/otelcoltest). cpu-us/event is the CPU time of this
// process (the supervisor and the journal) plus the plugin process per event delivered;
// receiver-cpu-us/event that of rsyslogd or the collector.
//
//	FLOWKER_AUDIT_BIN=bin/flowker-audit go test -run '^$' -bench DeliveryPlugin -benchtime 1x ./internal/loadtest/
func BenchmarkDeliveryPlugin(b *testing.B) {
	n := 50_000
	if v := os.Getenv("FLOWKER_AUDIT_BENCH_DELIVERY_EVENTS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n <= 0 {
			b.Fatalf("FLOWKER_AUDIT_BENCH_DELIVERY_EVENTS=%q: want a positive integer", v)
		}
	}
	bin, nullsink := pluginBinaries(b)
	dir := b.TempDir()
	j := fillJournal(b, filepath.Join(dir, "journal.db"), n)
	last := j.Last()
	_, journalBytes, _ := j.Stats()

	// The forwarding sinks' receivers, started once: rsyslogd (plain TCP, a Direct main queue
	// writing to a file) and the OpenTelemetry Collector (OTLP receiver, file exporter).
	rsyslog := rsyslogtest.Start(b, rsyslogtest.Options{})
	collector := otelcoltest.Start(b, otelcoltest.Options{})
	jsonConfig := func(v any) func(string) []byte {
		return func(string) []byte { c, _ := json.Marshal(v); return c }
	}
	sinks := []struct {
		name     string
		launch   sink.LaunchOptions
		config   func(dir string) []byte
		receiver func() int // the receiver's pid, for its CPU time; nil when there is none
	}{
		{"nullsink", sink.LaunchOptions{Path: nullsink}, func(string) []byte { return []byte(`{}`) }, nil},
		{"sqlite", sink.LaunchOptions{Path: bin, Args: []string{"plugin", "sqlite"}}, func(dir string) []byte {
			c, _ := json.Marshal(map[string]string{"path": filepath.Join(dir, "audit.db")})
			return c
		}, nil},
		{"syslog-tcp", sink.LaunchOptions{Path: bin, Args: []string{"plugin", "syslog"}},
			jsonConfig(map[string]any{"address": rsyslog.Addr}), rsyslog.Pid},
		{"otlp-grpc", sink.LaunchOptions{Path: bin, Args: []string{"plugin", "otlp"}},
			jsonConfig(map[string]any{"endpoint": "http://" + collector.GRPCAddr, "protocol": "grpc"}), collector.Pid},
		{"otlp-http", sink.LaunchOptions{Path: bin, Args: []string{"plugin", "otlp"}},
			jsonConfig(map[string]any{"endpoint": "http://" + collector.HTTPAddr, "protocol": "http"}), collector.Pid},
	}
	run := 0
	for _, s := range sinks {
		for _, size := range []int{500, 1000, 5000} {
			b.Run(fmt.Sprintf("sink=%s/batch=%d", s.name, size), func(b *testing.B) {
				var busy, cpu, receiverCPU time.Duration
				var writes, batchEvents uint64
				var writeSeconds float64
				for range b.N {
					run++
					name := fmt.Sprintf("%s-%d-%d", s.name, size, run)
					sinkDir := b.TempDir()
					reg := prometheus.NewRegistry()
					src := newGatedSource(j)
					sup := host.NewSupervisor(host.SinkConfig{Name: name, Plugin: s.name, Launch: s.launch, Config: s.config(sinkDir),
						BatchSize: size, BatchBytes: 64 << 20, BatchInterval: -1}, src, host.NewMetrics(reg), nil)
					ctx, cancel := context.WithCancel(context.Background())
					done := make(chan error, 1)
					go func() { done <- sup.Run(ctx) }()
					ready := time.Now().Add(60 * time.Second)
					for ok, why := sup.Ready(); !ok; ok, why = sup.Ready() {
						if time.Now().After(ready) {
							b.Fatalf("plugin %s not ready after 60s: %s", s.name, why)
						}
						time.Sleep(time.Millisecond)
					}
					start := time.Now()
					cpu0 := ownCPU(b)
					var recv0 time.Duration
					if s.receiver != nil {
						recv0 = pidCPU(b, s.receiver())
					}
					src.Open()
					for {
						c, err := j.Cursor(name)
						if err != nil {
							b.Fatal(err)
						}
						if c >= last {
							break
						}
						time.Sleep(200 * time.Microsecond)
					}
					busy += time.Since(start)
					if s.receiver != nil {
						receiverCPU += pidCPU(b, s.receiver()) - recv0
					}
					w, wsum := histogramOf(b, reg, "flowker_audit_sink_write_duration_seconds")
					bc, bsum := histogramOf(b, reg, "flowker_audit_sink_batch_events")
					writes += w
					writeSeconds += wsum
					batchEvents += uint64(bsum)
					if bc != w {
						b.Logf("%d batches observed, %d writes", bc, w)
					}
					cancel()
					if err := <-done; err != nil && ctx.Err() == nil {
						b.Fatal(err)
					}
					// The plugin process has been waited for: its CPU time is now in
					// RUSAGE_CHILDREN (the plugin's start and stop included, a little).
					cpu += ownCPU(b) - cpu0
				}
				delivered := float64(b.N) * float64(last)
				b.ReportMetric(delivered/busy.Seconds(), "events/s")
				b.ReportMetric(float64(journalBytes)*float64(b.N)/busy.Seconds()/(1<<20), "MiB/s")
				b.ReportMetric(float64(cpu.Microseconds())/delivered, "cpu-us/event")
				if s.receiver != nil {
					b.ReportMetric(float64(receiverCPU.Microseconds())/delivered, "receiver-cpu-us/event")
				}
				if writes > 0 {
					b.ReportMetric(float64(batchEvents)/float64(writes), "events/write")
					b.ReportMetric(writeSeconds/float64(writes)*1000, "ms/write")
				}
			})
		}
	}
}

// ownCPU returns the CPU time (user + system) of this process plus that of its children that
// have been waited for (the plugin processes of finished runs).
func ownCPU(b *testing.B) time.Duration {
	var self, children syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &self); err != nil {
		b.Fatal(err)
	}
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children); err != nil {
		b.Fatal(err)
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// pidCPU returns the CPU time (user + system) pid used so far, from /proc/PID/stat (Linux).
func pidCPU(b *testing.B, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatalf("receiver CPU: %v", err)
	}
	s := string(raw)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// histogramOf returns the sample count and sum of the histogram name in reg (summed over labels).
func histogramOf(b *testing.B, reg *prometheus.Registry, name string) (count uint64, sum float64) {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name || mf.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range mf.GetMetric() {
			count += m.GetHistogram().GetSampleCount()
			sum += m.GetHistogram().GetSampleSum()
		}
	}
	return count, sum
}
