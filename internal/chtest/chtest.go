// Package chtest starts a throw-away ClickHouse server for tests and benchmarks.
//
// It runs Debian's clickhouse-server (18.16 on the project's machines) as a child process on free
// loopback ports, with a minimal config.xml and users.xml written into a temporary directory, and
// waits for /ping before returning. When the server binary is missing and the process runs as root,
// it installs it with
//
//	apt-get install -y clickhouse-server clickhouse-client
//
// and otherwise fails the test with that command. Tests are skipped only when
// FLOWKER_AUDIT_SKIP_CLICKHOUSE=1 is set, never silently. FLOWKER_AUDIT_CLICKHOUSE_SERVER may name
// another server binary (a single-binary modern build is started as "clickhouse server").
//
// Start ties the server to a test (stopped by t.Cleanup); Launch returns one for TestMain or a
// benchmark driver, to be stopped with Close. Stop, Kill and Restart simulate outages: Restart brings
// the server back on the same ports and data directory.
//
// StartCluster adds Debian's ZooKeeper (run with java in a temporary directory, see
// LaunchZooKeeper) and several servers that are the replicas of one shard of a cluster, with
// remote_servers, macros and ON CLUSTER DDL written into their configuration;
// StartShardedCluster does the same with several shards.
//
// The package also drives chdb, an embedded current ClickHouse shipped through npm, to check SQL
// against a modern engine (see Chdb).
package chtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Environment variables understood by the package.
const (
	// EnvSkip, when "1", makes Start skip the test (with a reason) instead of running ClickHouse.
	EnvSkip = "FLOWKER_AUDIT_SKIP_CLICKHOUSE"
	// EnvServer names the server binary to use instead of the Debian package's.
	EnvServer = "FLOWKER_AUDIT_CLICKHOUSE_SERVER"
)

// InstallCommand installs the server on Debian.
const InstallCommand = "apt-get install -y clickhouse-server clickhouse-client"

// ErrSkipped is returned by Launch when EnvSkip is set.
var ErrSkipped = errors.New("clickhouse tests skipped: " + EnvSkip + "=1")

// Option changes how the server is started.
type Option func(*options)

type options struct {
	dir          string
	maxMemory    int64
	logLevel     string
	startTimeout time.Duration
	stopTimeout  time.Duration
	usersD       map[string][]byte
	logf         func(format string, args ...any)
	ports        [3]int // tcp, http, interserver; zero: free ports are picked
	extraConfig  string // XML elements added inside <yandex> of config.xml
}

// WithDir keeps the server's files in dir (created if needed) instead of a temporary directory,
// so that a benchmark can reuse data between runs. The directory is not removed.
func WithDir(dir string) Option { return func(o *options) { o.dir = dir } }

// WithMaxMemoryUsage sets the per-query memory limit of the default profile (default 4 GB).
func WithMaxMemoryUsage(bytes int64) Option { return func(o *options) { o.maxMemory = bytes } }

// WithLogLevel sets the server's log level (default "warning").
func WithLogLevel(level string) Option { return func(o *options) { o.logLevel = level } }

// WithStartTimeout bounds the wait for /ping (default 60 s).
func WithStartTimeout(d time.Duration) Option { return func(o *options) { o.startTimeout = d } }

// WithStopTimeout bounds the graceful stop before SIGKILL (default 20 s).
func WithStopTimeout(d time.Duration) Option { return func(o *options) { o.stopTimeout = d } }

// WithUsersD adds a file to users.d/ (merged into users.xml by the server), e.g. a deployment's
// user definition.
func WithUsersD(name string, content []byte) Option {
	return func(o *options) {
		if o.usersD == nil {
			o.usersD = map[string][]byte{}
		}
		o.usersD[name] = content
	}
}

// WithLogf sends progress messages (install, start, stop) to logf.
func WithLogf(logf func(format string, args ...any)) Option {
	return func(o *options) { o.logf = logf }
}

// WithPorts fixes the native, HTTP and interserver (replication) ports instead of picking free
// ones; a cluster needs them before any of its servers starts, for remote_servers.
func WithPorts(tcp, http, interserver int) Option {
	return func(o *options) { o.ports = [3]int{tcp, http, interserver} }
}

// WithConfig adds XML elements (remote_servers, macros, zookeeper, ...) inside <yandex> of the
// server's config.xml.
func WithConfig(xml string) Option { return func(o *options) { o.extraConfig += xml } }

// Server is a running (or stopped) ClickHouse server.
type Server struct {
	// Addr is the native protocol address (host:port) for clickhouse-go.
	Addr string
	// HTTPAddr is the HTTP interface address (host:port).
	HTTPAddr string
	// Dir holds config.xml, users.xml, data/ and log/.
	Dir string
	// Bin is the server binary.
	Bin string

	opts        options
	tmpDir      bool
	tcpPort     int
	http        int
	interserver int

	mu      sync.Mutex
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// PID is the server process's id (0 when it is not running).
func (s *Server) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Start starts a server for t and stops it when t finishes. It fails t when the server cannot be
// found, installed or started, and skips t only when FLOWKER_AUDIT_SKIP_CLICKHOUSE=1.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	o := append([]Option{WithLogf(t.Logf)}, opts...)
	if os.Getenv(EnvSkip) != "1" && !hasDirOption(opts) {
		o = append(o, WithDir(t.TempDir()))
	}
	s, err := Launch(o...)
	if errors.Is(err, ErrSkipped) {
		t.Skipf("%v (unset it to run the ClickHouse tests)", err)
	}
	if err != nil {
		t.Fatalf("chtest: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("chtest: %v", err)
		}
	})
	return s
}

func hasDirOption(opts []Option) bool {
	var o options
	for _, f := range opts {
		f(&o)
	}
	return o.dir != ""
}

// Launch starts a server without a testing.TB (TestMain, benchmark drivers). The caller must Close
// it. It returns ErrSkipped when FLOWKER_AUDIT_SKIP_CLICKHOUSE=1.
func Launch(opts ...Option) (*Server, error) {
	if os.Getenv(EnvSkip) == "1" {
		return nil, ErrSkipped
	}
	o := options{maxMemory: 4_000_000_000, logLevel: "warning", startTimeout: 60 * time.Second, stopTimeout: 20 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if o.logf == nil {
		o.logf = func(string, ...any) {}
	}
	bin, err := FindServer(o.logf)
	if err != nil {
		return nil, err
	}
	s := &Server{Bin: bin, opts: o, Dir: o.dir}
	if s.Dir == "" {
		d, err := os.MkdirTemp("", "chtest-")
		if err != nil {
			return nil, fmt.Errorf("create server directory: %w", err)
		}
		s.Dir, s.tmpDir = d, true
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("create server directory: %w", err)
	}
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ { // a free port can be taken between probe and bind
		if o.ports[0] != 0 {
			s.tcpPort, s.http, s.interserver = o.ports[0], o.ports[1], o.ports[2]
		} else if ports, err := FreePorts(3); err != nil {
			return nil, err
		} else {
			s.tcpPort, s.http, s.interserver = ports[0], ports[1], ports[2]
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort))
		s.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.http))
		if err := s.writeConfig(); err != nil {
			return nil, err
		}
		if lastErr = s.start(); lastErr == nil {
			return s, nil
		}
		o.logf("chtest: start attempt %d failed: %v", attempt+1, lastErr)
		if o.ports[0] != 0 {
			break // fixed ports: another attempt would bind the same ones
		}
	}
	if s.tmpDir {
		_ = os.RemoveAll(s.Dir)
	}
	return nil, lastErr
}

// FindServer returns the clickhouse-server binary, installing the Debian package when it is
// missing and the process runs as root.
func FindServer(logf func(format string, args ...any)) (string, error) {
	if p := os.Getenv(EnvServer); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvServer, p, err)
		}
		return p, nil
	}
	if p := lookServer(); p != "" {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("clickhouse-server not found; install it with: sudo %s (or set %s=1 to skip these tests)", InstallCommand, EnvSkip)
	}
	if err := install(logf); err != nil {
		return "", fmt.Errorf("clickhouse-server not found and %q failed: %w (or set %s=1 to skip these tests)", InstallCommand, err, EnvSkip)
	}
	if p := lookServer(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("clickhouse-server still not found after %q", InstallCommand)
}

func lookServer() string {
	for _, p := range []string{"/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"} {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p
	}
	return ""
}

// install runs apt-get under a file lock so that parallel test binaries install once.
func install(logf func(format string, args ...any)) error {
	return withInstallLock(func() error {
		if lookServer() != "" {
			return nil
		}
		return installPackages(logf, strings.Fields(InstallCommand))
	})
}

// withInstallLock runs f holding the file lock that serialises package installs across test
// binaries.
func withInstallLock(f func() error) error {
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "flowker-audit-chtest-install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("open install lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("take install lock: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // released on close anyway
	return f()
}

// installPackages runs an apt-get install command, after apt-get update when it fails at first.
func installPackages(logf func(format string, args ...any), installArgs []string) error {
	run := func(args ...string) error {
		logf("chtest: running %s", strings.Join(args, " "))
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
		return nil
	}
	if err := run(installArgs...); err == nil {
		return nil
	}
	if err := run("apt-get", "update"); err != nil {
		return err
	}
	return run(installArgs...)
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// FreePorts returns n distinct free loopback ports (free when probed; a process started later
// binds them).
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

const configXML = `<?xml version="1.0"?>
<yandex>
    <logger>
        <level>%[1]s</level>
        <log>%[2]s/log/clickhouse-server.log</log>
        <errorlog>%[2]s/log/clickhouse-server.err.log</errorlog>
        <size>100M</size><count>2</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>%[3]d</http_port>
    <tcp_port>%[4]d</tcp_port>
    <max_connections>256</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>100</max_concurrent_queries>
    <uncompressed_cache_size>1073741824</uncompressed_cache_size>
    <mark_cache_size>1073741824</mark_cache_size>
    <path>%[2]s/data/</path>
    <tmp_path>%[2]s/tmp/</tmp_path>
    <user_files_path>%[2]s/user_files/</user_files_path>
    <format_schema_path>%[2]s/format_schemas/</format_schema_path>
    <users_config>users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>%[5]d</interserver_http_port>
%[6]s</yandex>
`

const usersXML = `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>%d</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks replace="replace">
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`

func (s *Server) writeConfig() error {
	for _, d := range []string{"data", "tmp", "user_files", "format_schemas", "log", "users.d"} {
		if err := os.MkdirAll(filepath.Join(s.Dir, d), 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	files := map[string][]byte{
		"config.xml": fmt.Appendf(nil, configXML, s.opts.logLevel, s.Dir, s.http, s.tcpPort, s.interserver, s.opts.extraConfig),
		"users.xml":  fmt.Appendf(nil, usersXML, s.opts.maxMemory),
	}
	for name, content := range s.opts.usersD {
		files[filepath.Join("users.d", filepath.Base(name))] = content
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(s.Dir, name), content, 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	return nil
}

func (s *Server) start() error {
	if s.Running() {
		return errors.New("server already running")
	}
	args := []string{"--config-file=" + filepath.Join(s.Dir, "config.xml")}
	if filepath.Base(s.Bin) == "clickhouse" { // single-binary modern build
		args = append([]string{"server"}, args...)
	}
	out, err := os.OpenFile(filepath.Join(s.Dir, "log", "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open server stdout log: %w", err)
	}
	cmd := exec.Command(s.Bin, args...)
	cmd.Dir = s.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// Own process group (a terminal's ^C does not reach it); killed if the test binary dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start %s: %w", s.Bin, err)
	}
	done := make(chan struct{})
	go func() {
		err := cmd.Wait()
		out.Close()
		s.mu.Lock()
		s.waitErr = err
		s.mu.Unlock()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	if err := s.waitReady(done); err != nil {
		s.signalAndWait(syscall.SIGKILL, 10*time.Second)
		return fmt.Errorf("%w\n%s", err, s.logTail())
	}
	s.opts.logf("chtest: clickhouse-server pid %d ready on %s (http %s) in %v", cmd.Process.Pid, s.Addr, s.HTTPAddr, time.Since(begin).Round(time.Millisecond))
	return nil
}

func (s *Server) waitReady(done <-chan struct{}) error {
	deadline := time.Now().Add(s.opts.startTimeout)
	client := &http.Client{Timeout: time.Second, Transport: queryTransport}
	for {
		select {
		case <-done:
			return errors.New("clickhouse-server exited during start")
		default:
		}
		resp, err := client.Get("http://" + s.HTTPAddr + "/ping")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.TrimSpace(string(body)) == "Ok." {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("clickhouse-server not ready after %v (last error: %v)", s.opts.startTimeout, err)
		}
		select {
		case <-done:
		case <-time.After(25 * time.Millisecond):
		}
	}
}

func (s *Server) logTail() string {
	var b strings.Builder
	for _, f := range []string{"log/clickhouse-server.err.log", "log/stdout.log"} {
		data, err := os.ReadFile(filepath.Join(s.Dir, f))
		if err == nil && len(data) > 0 {
			fmt.Fprintf(&b, "--- %s (tail) ---\n%s\n", f, tail(data, 3000))
		}
	}
	return b.String()
}

// signalAndWait sends sig to the running server and waits up to timeout for it to exit. It
// reports whether the process exited.
func (s *Server) signalAndWait(sig syscall.Signal, timeout time.Duration) bool {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return true
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		s.mu.Lock()
		s.cmd, s.done = nil, nil
		s.mu.Unlock()
		return true
	case <-time.After(timeout):
		return false
	}
}

// Stop stops the server gracefully (SIGTERM), killing it after the stop timeout (default 20 s).
// Stopping a stopped server does nothing.
func (s *Server) Stop() error {
	if s.signalAndWait(syscall.SIGTERM, s.opts.stopTimeout) {
		return nil
	}
	s.opts.logf("chtest: clickhouse-server did not stop within %v; killing it", s.opts.stopTimeout)
	if !s.signalAndWait(syscall.SIGKILL, 10*time.Second) {
		return errors.New("clickhouse-server did not exit after SIGKILL")
	}
	return nil
}

// Kill stops the server with SIGKILL (a crash).
func (s *Server) Kill() error {
	if !s.signalAndWait(syscall.SIGKILL, 10*time.Second) {
		return errors.New("clickhouse-server did not exit after SIGKILL")
	}
	return nil
}

// Restart stops the server if it runs and starts it again on the same ports and data directory.
func (s *Server) Restart() error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start()
}

// Running reports whether the server process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Close stops the server and removes its directory when Launch created it.
func (s *Server) Close() error {
	err := s.Stop()
	if s.tmpDir {
		if rerr := os.RemoveAll(s.Dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove server directory: %w", rerr)
		}
	}
	return err
}

// queryTransport opens a new connection for every request. The servers close idle keep-alive
// connections after keep_alive_timeout (3 s), and a POST sent on a pooled connection the server
// has just closed fails with EOF without a retry (net/http replays only idempotent requests); on a
// loaded machine the gap between the readiness probe and the first DDL is often longer than 3 s.
var queryTransport = &http.Transport{DisableKeepAlives: true}

var queryClient = &http.Client{Transport: queryTransport}

// Query runs sql as the default user over the HTTP interface and returns the response body
// (tab-separated unless sql says otherwise). It is meant for test setup and inspection.
func (s *Server) Query(ctx context.Context, sql string) (string, error) {
	return s.QueryAs(ctx, "default", "", sql)
}

// QueryAs is Query as another user.
func (s *Server) QueryAs(ctx context.Context, user, password, sql string) (string, error) {
	u := url.URL{Scheme: "http", Host: s.HTTPAddr, Path: "/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), strings.NewReader(sql))
	if err != nil {
		return "", fmt.Errorf("build query request: %w", err)
	}
	req.Header.Set("X-ClickHouse-User", user)
	req.Header.Set("X-ClickHouse-Key", password)
	resp, err := queryClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("query clickhouse over http: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read query response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("clickhouse http %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	return string(body), nil
}
