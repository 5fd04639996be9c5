package config

import (
	"fmt"
	"time"
)

// MinRetention is the shortest retention a sink accepts: retention is for keeping months and
// years; anything shorter is more likely a typo (minutes for days) than a policy.
const MinRetention = Duration(time.Hour)

// RetentionCatalog is implemented by plugin catalogs that know which bundled plugins can remove
// old events (sink.Retainer); check-config then refuses `retention` for the others.
type RetentionCatalog interface {
	Retains(plugin string) bool
}

// validateRetention checks sinks[i].retention: at least MinRetention, a plugin that can apply
// it (bundled plugins are known; an external one is checked when it starts, and the sidecar
// reports it in its log and in flowker_audit_retention_errors_total).
func validateRetention(errs *Errors, p string, s Sink, bundled bool, plugins PluginCatalog) {
	if s.Retention == 0 {
		return
	}
	if s.Retention < MinRetention {
		errs.add(p+".retention", "must be 0 (keep everything) or at least %s, got %s", MinRetention.D(), s.Retention.D())
		return
	}
	if rc, ok := plugins.(RetentionCatalog); ok && bundled && !rc.Retains(s.Plugin) {
		errs.add(p+".retention", "the %s plugin cannot remove events (it forwards them; retention is the receiver's business): remove retention here, or set it on a sqlite, clickhouse or file sink", s.Plugin)
	}
}

// validateRetentionNeedsCheckpoints refuses retention without signed checkpoints: the anchors
// that keep the trail verifiable after removal are signed with the checkpoint key.
func validateRetentionNeedsCheckpoints(errs *Errors, cfg *Config) {
	if cfg.Chain.CheckpointInterval > 0 {
		return
	}
	for i, s := range cfg.Sinks {
		if s.Retention > 0 {
			errs.add(sinkPath(i)+".retention", "needs signed checkpoints (chain.checkpoint_interval > 0): retention anchors are signed with the checkpoint key")
		}
	}
}

func sinkPath(i int) string { return fmt.Sprintf("sinks[%d]", i) }
