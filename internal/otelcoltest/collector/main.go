// Command collector is a minimal OpenTelemetry Collector for the otlp sink's tests and
// benchmarks: an OTLP receiver (gRPC and HTTP) and the file exporter, nothing else. It lives in
// its own Go module so that the collector's many dependencies never reach the flowker-audit
// binary; internal/otelcoltest builds it with `go build` and runs it as a separate process.
//
//	collector --config /path/to/config.yaml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/open-telemetry/opentelemetry-collector-contrib/exporter/fileexporter"
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap"
	"go.opentelemetry.io/collector/confmap/provider/fileprovider"
	"go.opentelemetry.io/collector/exporter"
	"go.opentelemetry.io/collector/otelcol"
	"go.opentelemetry.io/collector/receiver"
	"go.opentelemetry.io/collector/receiver/otlpreceiver"
	"go.opentelemetry.io/collector/service/telemetry"
	"go.uber.org/zap"
)

func factories() (otelcol.Factories, error) {
	var f otelcol.Factories
	var err error
	if f.Receivers, err = otelcol.MakeFactoryMap[receiver.Factory](otlpreceiver.NewFactory()); err != nil {
		return f, fmt.Errorf("receivers: %w", err)
	}
	if f.Exporters, err = otelcol.MakeFactoryMap[exporter.Factory](fileexporter.NewFactory()); err != nil {
		return f, fmt.Errorf("exporters: %w", err)
	}
	f.Telemetry = quietTelemetry()
	return f, nil
}

// quietTelemetry is the collector's own telemetry reduced to warnings and errors on standard
// error: no metrics listener (several test collectors run at once) and none of the cloud
// resource detectors the full telemetry factory links in.
func quietTelemetry() telemetry.Factory {
	type config struct{}
	return telemetry.NewFactory(func() component.Config { return &config{} },
		telemetry.WithCreateLogger(func(context.Context, telemetry.LoggerSettings, component.Config) (*zap.Logger, component.ShutdownFunc, error) {
			zc := zap.NewProductionConfig()
			zc.Level = zap.NewAtomicLevelAt(zap.WarnLevel)
			l, err := zc.Build()
			if err != nil {
				return nil, nil, err
			}
			return l, func(context.Context) error { _ = l.Sync(); return nil }, nil
		}))
}

func main() {
	set := otelcol.CollectorSettings{
		BuildInfo: component.BuildInfo{Command: "collector", Description: "flowker-audit test collector", Version: "test"},
		Factories: factories,
		ConfigProviderSettings: otelcol.ConfigProviderSettings{
			ResolverSettings: confmap.ResolverSettings{
				ProviderFactories: []confmap.ProviderFactory{fileprovider.NewFactory()},
				DefaultScheme:     "file",
			},
		},
	}
	if err := otelcol.NewCommand(set).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
