// Package plugins lists the sink plugins bundled in the flowker-audit binary. The sidecar starts
// each one as a separate process by re-executing itself as `flowker-audit plugin NAME`; this
// package is what that command serves.
package plugins

import (
	"fmt"
	"sort"

	"github.com/flowker-audit/flowker-audit/plugins/clickhouse"
	"github.com/flowker-audit/flowker-audit/plugins/file"
	"github.com/flowker-audit/flowker-audit/plugins/otlp"
	"github.com/flowker-audit/flowker-audit/plugins/sqlite"
	"github.com/flowker-audit/flowker-audit/plugins/syslog"
	"github.com/flowker-audit/flowker-audit/sink"
)

// bundled maps plugin names to constructors. Adding a bundled plugin means adding it here and to
// config.BundledPlugins (a test keeps the two in step).
var bundled = map[string]func() sink.Sink{
	"sqlite":     func() sink.Sink { return sqlite.New() },
	"clickhouse": clickhouse.New,
	"file":       file.New,
	"syslog":     syslog.New,
	"otlp":       otlp.New,
}

// Names returns the bundled plugin names, sorted.
func Names() []string {
	out := make([]string, 0, len(bundled))
	for n := range bundled {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Serve runs the bundled plugin name as a go-plugin server (it never returns on success).
func Serve(name string) error {
	f, ok := bundled[name]
	if !ok {
		return fmt.Errorf("unknown bundled plugin %q (bundled: %v)", name, Names())
	}
	sink.Serve(f())
	return nil
}

// ValidateConfig checks the config block of a bundled plugin in-process, without starting it.
// known is false for a plugin that is not bundled (an external binary validates its own).
func ValidateConfig(name string, config []byte) (known bool, err error) {
	f, ok := bundled[name]
	if !ok {
		return false, nil
	}
	if v, ok := f().(sink.Validator); ok {
		return true, v.ValidateConfig(config)
	}
	return true, nil
}
