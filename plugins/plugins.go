// Package plugins lists the sink plugins bundled in the flowker-audit binary. The sidecar starts
// each one as a separate process by re-executing itself as `flowker-audit plugin NAME`; this
// package is what that command serves.
package plugins

import (
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/flowker-audit/flowker-audit/plugins/clickhouse"
	"github.com/flowker-audit/flowker-audit/plugins/file"
	"github.com/flowker-audit/flowker-audit/plugins/otlp"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/plugins/syslog"
	"github.com/flowker-audit/flowker-audit/sink"
)

// bundled maps plugin names to constructors: the one list of bundled plugins (configuration
// checks and the sidecar's launcher read it through Catalog and IsBundled).
var bundled = map[string]func(*slog.Logger) sink.Sink{
	"sqlite":     func(l *slog.Logger) sink.Sink { return sqlite.New(sqlite.Options{Logger: l}) },
	"clickhouse": func(l *slog.Logger) sink.Sink { return clickhouse.New(clickhouse.Options{Logger: l}) },
	"file":       func(l *slog.Logger) sink.Sink { return file.New(file.Options{Logger: l}) },
	"syslog":     func(l *slog.Logger) sink.Sink { return syslog.New(syslog.Options{Logger: l}) },
	"otlp":       func(l *slog.Logger) sink.Sink { return otlp.New(otlp.Options{Logger: l}) },
}

// Names returns the bundled plugin names, sorted.
func Names() []string {
	out := make([]string, 0, len(bundled))
	for n := range bundled {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// IsBundled reports whether name is a bundled plugin.
func IsBundled(name string) bool {
	_, ok := bundled[name]
	return ok
}

// Catalog is the bundled plugins as configuration checks see them (config.PluginCatalog).
type Catalog struct{}

// Bundled returns the bundled plugin names, sorted.
func (Catalog) Bundled() []string { return Names() }

// Queryable reports whether the bundled plugin can answer the audit API (implements
// sink.Querier); write-only plugins such as file, syslog and otlp cannot.
func (Catalog) Queryable(name string) bool {
	f, ok := bundled[name]
	if !ok {
		return false
	}
	_, q := f(nil).(sink.Querier)
	return q
}

// Retains reports whether the bundled plugin can remove old events (implements sink.Retainer),
// which a sink's `retention` needs.
func (Catalog) Retains(name string) bool {
	f, ok := bundled[name]
	if !ok {
		return false
	}
	_, r := f(nil).(sink.Retainer)
	return r
}

// ValidateConfig checks the config block of a bundled plugin (see the package function).
func (Catalog) ValidateConfig(name string, config []byte) (known bool, err error) {
	return ValidateConfig(name, config)
}

// Serve runs the bundled plugin name as a go-plugin server (it never returns on success).
func Serve(name string) error {
	f, ok := bundled[name]
	if !ok {
		return fmt.Errorf("unknown bundled plugin %q (bundled: %v)", name, Names())
	}
	// Lines logged to standard error in this form reach the sidecar's log with the sink's name.
	sink.Serve(f(sink.NewLogger(os.Stderr, slog.LevelInfo)))
	return nil
}

// ValidateConfig checks the config block of a bundled plugin in-process, without starting it.
// known is false for a plugin that is not bundled (an external binary validates its own).
func ValidateConfig(name string, config []byte) (known bool, err error) {
	f, ok := bundled[name]
	if !ok {
		return false, nil
	}
	if v, ok := f(nil).(sink.Validator); ok {
		return true, v.ValidateConfig(config)
	}
	return true, nil
}
