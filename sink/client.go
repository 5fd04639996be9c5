package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink/sinkpb"
)

// LaunchOptions says how to start a plugin process.
type LaunchOptions struct {
	// Name identifies the plugin in logs and errors (for example the sink's name). Optional.
	Name string
	// Path is the plugin executable (looked up in PATH when it has no slash).
	Path string
	// Args are the arguments after the program name.
	Args []string
	// Env is added to the plugin's environment.
	Env []string
	// Dir is the plugin's working directory; empty means the host's.
	Dir string
	// InheritEnv passes the host's whole environment to the plugin. By default the plugin only
	// gets a small allowlist (PATH, HOME, TMPDIR, TZ, locale and CA certificate variables) plus
	// Env, so secrets in the sidecar's environment do not leak into third-party plugins.
	InheritEnv bool
	// SHA256 pins the executable: lowercase or uppercase hex of its SHA-256. When set, the binary
	// is hashed before every start and refused (ErrChecksumMismatch) when it differs.
	SHA256 string
	// Logger receives go-plugin's messages and the plugin's own log lines. Nil discards them.
	Logger *slog.Logger
	// StartTimeout bounds the handshake. Default 30s.
	StartTimeout time.Duration
}

// killGrace is how long Kill waits for go-plugin's graceful shutdown (which itself waits 2s)
// before it kills the process outright.
const killGrace = 5 * time.Second

// maxWriteBytes is the estimated size above which Client.Write splits a batch.
const maxWriteBytes = MaxMessageBytes / 2

// Client is the host's handle on one running plugin process. It implements Sink and Querier
// over gRPC; deadlines and cancellation of the contexts passed to it reach the plugin.
// Errors keep their meaning across the process boundary: ErrNotFound and ErrUnsupported match
// with errors.Is, and errors the plugin marked Permanent satisfy IsPermanent.
type Client struct {
	name     string
	pc       *plugin.Client
	cmd      *exec.Cmd
	conn     *grpc.ClientConn
	rpc      sinkpb.SinkClient
	killOnce sync.Once
}

var (
	_ Sink    = (*Client)(nil)
	_ Querier = (*Client)(nil)
)

// Open starts the plugin described by opts, checks its checksum (when pinned) and protocol
// version, and connects to it over gRPC with mutual TLS. The caller must call Kill when done.
func Open(ctx context.Context, opts LaunchOptions) (*Client, error) {
	name := opts.Name
	if name == "" {
		name = filepath.Base(opts.Path)
	}
	if opts.Path == "" {
		return nil, fmt.Errorf("starting sink plugin %s: no executable path", name)
	}
	var pin []byte
	if opts.SHA256 != "" {
		b, err := hex.DecodeString(opts.SHA256)
		if err != nil || len(b) != sha256.Size {
			return nil, fmt.Errorf("starting sink plugin %s: sha256 pin %q is not 64 hex digits", name, opts.SHA256)
		}
		pin = b
	}
	log := opts.Logger
	if log == nil {
		log = discardLogger()
	}
	startTimeout := opts.StartTimeout
	if startTimeout <= 0 {
		startTimeout = 30 * time.Second
	}

	cmd := exec.Command(opts.Path, opts.Args...)
	cmd.Dir = opts.Dir
	cmd.Env = pluginEnv(opts)
	cfg := &plugin.ClientConfig{
		HandshakeConfig:  handshake(),
		VersionedPlugins: versionedPlugins(),
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           newHCLogger(log, "plugin."+name),
		AutoMTLS:         true,
		StartTimeout:     startTimeout,
		SkipHostEnv:      true, // pluginEnv already decided what the plugin inherits
		Stderr:           io.Discard,
	}
	if pin != nil {
		cfg.SecureConfig = &plugin.SecureConfig{Checksum: pin, Hash: sha256.New()}
	}
	pc := plugin.NewClient(cfg)

	type result struct {
		c   *Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := connect(pc, cmd, name, opts.SHA256)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			pc.Kill()
			return nil, r.err
		}
		return r.c, nil
	case <-ctx.Done():
		go func() {
			<-ch // go-plugin's start cannot be interrupted; it ends within StartTimeout
			pc.Kill()
		}()
		return nil, fmt.Errorf("starting sink plugin %s: %w", name, ctx.Err())
	}
}

func pluginEnv(opts LaunchOptions) []string {
	var env []string
	if opts.InheritEnv {
		env = os.Environ()
	} else {
		// What a plugin inherits from the host unless InheritEnv is set.
		for _, k := range [...]string{"PATH", "HOME", "TMPDIR", "TZ", "LANG", "LC_ALL", "SSL_CERT_FILE", "SSL_CERT_DIR", "GOCOVERDIR"} {
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	return append(env, opts.Env...)
}

var pluginVersionRE = regexp.MustCompile(`Plugin version: (\d+)`)

func connect(pc *plugin.Client, cmd *exec.Cmd, name, pin string) (*Client, error) {
	rpcClient, err := pc.Client()
	if err != nil {
		switch {
		case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
			got, herr := fileSHA256(cmd.Path)
			if herr != nil {
				got = "unknown (" + herr.Error() + ")"
			}
			return nil, fmt.Errorf("starting sink plugin %s: %w: %s: expected sha256 %s, got %s",
				name, ErrChecksumMismatch, cmd.Path, strings.ToLower(pin), got)
		case strings.Contains(err.Error(), "incompatible API version"):
			theirs := "unknown"
			if m := pluginVersionRE.FindStringSubmatch(err.Error()); m != nil {
				theirs = m[1]
			}
			return nil, fmt.Errorf("starting sink plugin %s: %w: the plugin speaks protocol version %s, this host speaks version %d; rebuild the plugin against a matching flowker-audit sink SDK",
				name, ErrProtocolVersion, theirs, ProtocolVersion)
		}
		return nil, fmt.Errorf("starting sink plugin %s: %w", name, err)
	}
	raw, err := rpcClient.Dispense(pluginName)
	if err != nil {
		return nil, fmt.Errorf("starting sink plugin %s: %w", name, err)
	}
	rc, ok := raw.(*rpcConn)
	if !ok {
		return nil, fmt.Errorf("starting sink plugin %s: unexpected client type %T", name, raw)
	}
	return &Client{name: name, pc: pc, cmd: cmd, conn: rc.conn, rpc: rc.stub}, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// FileSHA256 returns the lowercase hex SHA-256 of the file at path, the form LaunchOptions.SHA256
// expects.
func FileSHA256(path string) (string, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return sum, nil
}

// Name returns the plugin's name used in logs and errors.
func (c *Client) Name() string { return c.name }

// Kill ends the plugin process: it asks go-plugin to shut the plugin down gracefully and kills
// the process when that does not finish within a few seconds. It blocks until the process is
// gone and may be called more than once.
func (c *Client) Kill() {
	c.killOnce.Do(func() {
		done := make(chan struct{})
		go func() {
			c.pc.Kill()
			close(done)
		}()
		t := time.NewTimer(killGrace)
		defer t.Stop()
		select {
		case <-done:
			return
		case <-t.C:
		}
		if p := c.cmd.Process; p != nil {
			_ = p.Kill()
		}
		<-done
	})
}

// KillNow kills the plugin process at once, without asking it to shut down, and cleans up like
// Kill. Use it for a plugin that crashed or hangs.
func (c *Client) KillNow() {
	if p := c.cmd.Process; p != nil && !c.pc.Exited() {
		_ = p.Kill()
	}
	c.Kill()
}

// Exited reports whether the plugin process has exited.
func (c *Client) Exited() bool { return c.pc.Exited() }

// Ping checks that the plugin process answers on its gRPC connection.
func (c *Client) Ping(ctx context.Context) error {
	resp, err := grpc_health_v1.NewHealthClient(c.conn).Check(ctx,
		&grpc_health_v1.HealthCheckRequest{Service: plugin.GRPCServiceName})
	if err != nil {
		return fromStatus(ctx, "ping", err)
	}
	if resp.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
		return fmt.Errorf("sink plugin ping: status %s", resp.GetStatus())
	}
	return nil
}

// Configure implements Sink.
func (c *Client) Configure(ctx context.Context, config []byte) error {
	_, err := c.rpc.Configure(ctx, &sinkpb.ConfigureRequest{Config: config})
	return fromStatus(ctx, "configure", err)
}

// Capabilities implements Sink.
func (c *Client) Capabilities(ctx context.Context) (Capabilities, error) {
	resp, err := c.rpc.Capabilities(ctx, &sinkpb.CapabilitiesRequest{})
	if err != nil {
		return Capabilities{}, fromStatus(ctx, "capabilities", err)
	}
	return Capabilities{Write: resp.GetWrite(), Query: resp.GetQuery(), Checkpoints: resp.GetCheckpoints(), Retention: resp.GetRetention(),
		Watermarks: resp.GetWatermarks()}, nil
}

// Write implements Sink. Batches larger than a gRPC message are sent as several calls in order.
func (c *Client) Write(ctx context.Context, events []chain.Event) error {
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) {
			s := approxSize(&events[n])
			if n > 0 && size+s > maxWriteBytes {
				break
			}
			size += s
			n++
		}
		_, err := c.rpc.Write(ctx, &sinkpb.WriteRequest{Events: eventsToPB(events[:n])})
		if err != nil {
			return fromStatus(ctx, "write", err)
		}
		events = events[n:]
	}
	return nil
}

// approxSize is an upper bound of an event's protobuf size.
func approxSize(e *chain.Event) int {
	return 96 + len(e.EventID) + len(e.EventType) + len(e.Action) + len(e.Result) + len(e.ResourceID) +
		len(e.ResourceType) + len(e.Actor.Type) + len(e.Actor.ID) + len(e.Actor.IPAddress) +
		len(e.Context) + len(e.Metadata) + len(e.Hash) + len(e.PreviousHash) + len(e.ChainID)
}

// Head implements Sink.
func (c *Client) Head(ctx context.Context, chainID string) (Head, error) {
	resp, err := c.rpc.Head(ctx, &sinkpb.HeadRequest{ChainId: chainID})
	if err != nil {
		return Head{}, fromStatus(ctx, "head", err)
	}
	return Head{Found: resp.GetFound(), Sequence: resp.GetSequence(), Hash: resp.GetHash()}, nil
}

// Close implements Sink: it asks the plugin to flush and release its resources. It does not end
// the process; call Kill for that.
func (c *Client) Close(ctx context.Context) error {
	_, err := c.rpc.Close(ctx, &sinkpb.CloseRequest{})
	return fromStatus(ctx, "close", err)
}

// Search implements Querier.
func (c *Client) Search(ctx context.Context, q Query) (Page, error) {
	resp, err := c.rpc.Search(ctx, queryToPB(&q))
	if err != nil {
		return Page{}, fromStatus(ctx, "search", err)
	}
	return Page{Events: eventsFromPB(resp.GetEvents()), More: resp.GetMore()}, nil
}

// Get implements Querier.
func (c *Client) Get(ctx context.Context, eventID string) (chain.Event, error) {
	resp, err := c.rpc.Get(ctx, &sinkpb.GetRequest{EventId: eventID})
	if err != nil {
		return chain.Event{}, fromStatus(ctx, "get", err)
	}
	if resp.GetEvent() == nil {
		return chain.Event{}, fmt.Errorf("sink plugin get: empty response for %q", eventID)
	}
	var e chain.Event
	eventFromPB(resp.GetEvent(), &e)
	return e, nil
}

// ReadChain implements Querier. The events are streamed; returning an error from fn stops the
// stream and ReadChain returns that error.
func (c *Client) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rpc.ReadChain(ctx, &sinkpb.ReadChainRequest{ChainId: chainID, From: from, To: to})
	if err != nil {
		return fromStatus(ctx, "read chain", err)
	}
	for {
		p, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fromStatus(ctx, "read chain", err)
		}
		e := new(chain.Event)
		eventFromPB(p, e)
		if err := fn(e); err != nil {
			return err
		}
	}
}

// Chains implements Querier.
func (c *Client) Chains(ctx context.Context) ([]ChainInfo, error) {
	resp, err := c.rpc.Chains(ctx, &sinkpb.ChainsRequest{})
	if err != nil {
		return nil, fromStatus(ctx, "chains", err)
	}
	out := make([]ChainInfo, len(resp.GetChains()))
	for i, ci := range resp.GetChains() {
		out[i] = ChainInfo{ChainID: ci.GetChainId(), Count: ci.GetCount(), First: ci.GetFirst(), Last: ci.GetLast()}
	}
	return out, nil
}
