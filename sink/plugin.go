package sink

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"

	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// ProtocolVersion is the version of the sink plugin protocol this SDK speaks. The host and the
// plugin must agree on it during the go-plugin handshake; a plugin built against another version
// is refused with ErrProtocolVersion.
const ProtocolVersion = 1

// The magic cookie tells a plugin binary that it was started by the sidecar. It is a usability
// check (running a plugin by hand prints a helpful message), not a security measure.
const (
	MagicCookieKey   = "FLOWKER_AUDIT_SINK_PLUGIN"
	MagicCookieValue = "5d1f0c2e8b7a4c39a6e2f81d09b4c7aa"
)

// MaxMessageBytes bounds one gRPC message in either direction. Hosts split larger batches
// before sending them.
const MaxMessageBytes = 256 << 20

// pluginName is the key of the sink in go-plugin's plugin set.
const pluginName = "sink"

// Validator is implemented by sinks that can check a configuration without applying it. The
// sidecar uses it in-process for bundled plugins (check-config), so it must not open
// connections, start processes or write anything; it may read files the configuration names (a
// CA file, for example) to say whether they are usable. sink/pluginconfig decodes a
// configuration and collects every problem with its key path.
type Validator interface {
	ValidateConfig(config []byte) error
}

// ServeOpts configures ServeWithOptions.
type ServeOpts struct {
	// Logger receives go-plugin's own messages. Defaults to NewLogger(os.Stderr, slog.LevelInfo).
	Logger *slog.Logger
}

// Serve runs impl as a sink plugin: it performs the go-plugin handshake on stdout, serves the
// sink protocol over gRPC (mutual TLS when the host asks for it) and returns when the host ends
// the plugin. Call it from main. If impl also implements Querier the query calls are served,
// otherwise they answer ErrUnsupported.
func Serve(impl Sink) { ServeWithOptions(impl, ServeOpts{}) }

// ServeWithOptions is Serve with options.
func ServeWithOptions(impl Sink, opts ServeOpts) { serve(impl, opts, ProtocolVersion) }

// serve serves impl under the given protocol version (tests use it to fake an incompatible
// plugin).
func serve(impl Sink, opts ServeOpts, version int) {
	log := opts.Logger
	if log == nil {
		log = NewLogger(os.Stderr, slog.LevelInfo)
	}
	go exitWithParent(impl, log)
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			MagicCookieKey:   MagicCookieKey,
			MagicCookieValue: MagicCookieValue,
		},
		VersionedPlugins: map[int]plugin.PluginSet{
			version: {pluginName: &grpcPlugin{impl: impl}},
		},
		GRPCServer: func(o []grpc.ServerOption) *grpc.Server {
			o = append(o, grpc.MaxRecvMsgSize(MaxMessageBytes), grpc.MaxSendMsgSize(MaxMessageBytes))
			return grpc.NewServer(o...)
		},
		Logger: newHCLogger(log, ""),
	})
}

// exitWithParent ends the plugin when the host process is gone (killed with SIGKILL, say), so
// that no orphaned plugin keeps files or connections open: go-plugin itself does not notice.
func exitWithParent(impl Sink, log *slog.Logger) {
	parent := os.Getppid()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for range t.C {
		if os.Getppid() == parent {
			continue
		}
		log.Warn("the host process is gone; closing the sink and exiting", "host_pid", parent)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := impl.Close(ctx); err != nil {
			log.Error("closing the sink", "error", err)
		}
		cancel()
		os.Exit(1)
	}
}

// handshake is the host's side of the handshake.
func handshake() plugin.HandshakeConfig {
	return plugin.HandshakeConfig{MagicCookieKey: MagicCookieKey, MagicCookieValue: MagicCookieValue}
}

// versionedPlugins is the plugin set the host accepts, per protocol version. A later protocol
// version is added here next to version 1.
func versionedPlugins() map[int]plugin.PluginSet {
	return map[int]plugin.PluginSet{ProtocolVersion: {pluginName: &grpcPlugin{}}}
}

// grpcPlugin binds the sink protocol to go-plugin. impl is set on the plugin side only.
type grpcPlugin struct {
	plugin.NetRPCUnsupportedPlugin
	impl Sink
}

var _ plugin.GRPCPlugin = (*grpcPlugin)(nil)

func (p *grpcPlugin) GRPCServer(_ *plugin.GRPCBroker, s *grpc.Server) error {
	sinkpb.RegisterSinkServer(s, newServer(p.impl))
	return nil
}

func (p *grpcPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &rpcConn{conn: c, stub: sinkpb.NewSinkClient(c)}, nil
}

// rpcConn is what the host gets from go-plugin's Dispense.
type rpcConn struct {
	conn *grpc.ClientConn
	stub sinkpb.SinkClient
}
