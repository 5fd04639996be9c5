package checkpoint

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the checkpoint writer's Prometheus metrics.
type Metrics struct {
	written  *prometheus.CounterVec
	sequence prometheus.Gauge
}

// NewMetrics registers the metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "flowker_audit_checkpoints_total",
			Help: "Signed checkpoints of the chain head, by result (ok, error).",
		}, []string{"result"}),
		sequence: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "flowker_audit_checkpoint_sequence",
			Help: "Sequence of the newest signed checkpoint.",
		}),
	}
	m.written.WithLabelValues("ok")
	m.written.WithLabelValues("error")
	reg.MustRegister(m.written, m.sequence)
	return m
}

// Writer appends a signed checkpoint of a chain's head to a Log whenever the head moved.
type Writer struct {
	ChainID string
	// Head returns the chain's newest durable sequence and hash.
	Head    func() (uint64, string)
	Signer  *Signer
	Log     *Log
	Metrics *Metrics         // optional
	Logger  *slog.Logger     // optional
	Now     func() time.Time // optional, for tests
	// OnWrite, when set, receives every checkpoint appended to the log (the sidecar hands it to
	// the sinks that keep checkpoints).
	OnWrite func(Checkpoint)
}

// Checkpoint signs the current head when it differs from the last checkpoint logged with this
// key. (A head below that checkpoint means acknowledged events were lost; signing it anyway keeps
// checkpoints coming, and verify then reports the two checkpoints that disagree.)
func (w *Writer) Checkpoint() (Checkpoint, bool, error) {
	seq, hash := w.Head()
	if seq == 0 {
		return Checkpoint{}, false, nil
	}
	if last, ok := w.Log.Last(w.ChainID); ok && last.Sequence == seq && last.Hash == hash {
		return last, false, nil
	}
	now := time.Now
	if w.Now != nil {
		now = w.Now
	}
	c, err := w.Signer.Sign(w.ChainID, seq, hash, now())
	if err == nil {
		err = w.Log.Append(c)
	}
	if err != nil {
		if w.Metrics != nil {
			w.Metrics.written.WithLabelValues("error").Inc()
		}
		return Checkpoint{}, false, err
	}
	if w.Metrics != nil {
		w.Metrics.written.WithLabelValues("ok").Inc()
		w.Metrics.sequence.Set(float64(seq))
	}
	if w.OnWrite != nil {
		w.OnWrite(c)
	}
	return c, true, nil
}

// Run writes a checkpoint every interval until ctx ends. Failures are logged and retried at the
// next tick.
func (w *Writer) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.tick()
		}
	}
}

func (w *Writer) tick() {
	c, wrote, err := w.Checkpoint()
	if w.Logger == nil {
		return
	}
	switch {
	case err != nil:
		w.Logger.Error("writing a signed checkpoint", "err", err)
	case wrote:
		w.Logger.Debug("signed checkpoint", "chain_id", c.ChainID, "sequence", c.Sequence, "hash", c.Hash)
	}
}

// Final writes a last checkpoint, at shutdown once no more events are appended.
func (w *Writer) Final() {
	w.tick()
}
