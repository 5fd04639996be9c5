package chtest

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ZooKeeperInstallCommand installs Debian's ZooKeeper (3.8, Java), which replicated ClickHouse
// tables and ON CLUSTER DDL need.
const ZooKeeperInstallCommand = "apt-get install -y --no-install-recommends zookeeper"

// zooKeeperJar is the server jar of Debian's zookeeper package; its manifest's Class-Path names
// every dependency, so `java -cp` with it (and a log4j directory) is enough.
const zooKeeperJar = "/usr/share/java/zookeeper.jar"

// ErrNoZooKeeper is returned by LaunchZooKeeper when ZooKeeper (or java) is missing and cannot be
// installed.
var ErrNoZooKeeper = errors.New("zookeeper is not installed")

// ZooKeeper is a standalone ZooKeeper server started with java directly (not through the Debian
// service) in a directory of its own, on a loopback port.
type ZooKeeper struct {
	// Addr is the client address, host:port.
	Addr string
	// Port is the client port.
	Port int
	// Dir holds zoo.cfg, data/ and zookeeper.log.
	Dir string

	logf func(format string, args ...any)
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// LaunchZooKeeper starts ZooKeeper in dir (created if needed) and waits until it serves requests.
// It installs the Debian package when it is missing and the process runs as root; otherwise it
// returns an error wrapping ErrNoZooKeeper that names the install command.
func LaunchZooKeeper(dir string, logf func(format string, args ...any)) (*ZooKeeper, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	java, err := findZooKeeper(logf)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		return nil, fmt.Errorf("create zookeeper directory: %w", err)
	}
	ports, err := FreePorts(1)
	if err != nil {
		return nil, err
	}
	z := &ZooKeeper{Dir: dir, Port: ports[0], Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0])), logf: logf}
	cfg := fmt.Sprintf(`tickTime=500
initLimit=10
syncLimit=5
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr
`, filepath.Join(dir, "data"), z.Port)
	log4j := "log4j.rootLogger=WARN, F\nlog4j.appender.F=org.apache.log4j.FileAppender\n" +
		"log4j.appender.F.File=" + filepath.Join(dir, "zookeeper.log") + "\n" +
		"log4j.appender.F.layout=org.apache.log4j.PatternLayout\nlog4j.appender.F.layout.ConversionPattern=%d %p %c: %m%n\n"
	for name, content := range map[string]string{"zoo.cfg": cfg, "log4j.properties": log4j} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("write zookeeper %s: %w", name, err)
		}
	}
	if err := z.start(java); err != nil {
		return nil, err
	}
	return z, nil
}

func findZooKeeper(logf func(format string, args ...any)) (string, error) {
	java, _ := exec.LookPath("java")
	if _, err := os.Stat(zooKeeperJar); err == nil && java != "" {
		return java, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%w (or java is missing); install it with: sudo %s", ErrNoZooKeeper, ZooKeeperInstallCommand)
	}
	err := withInstallLock(func() error {
		if _, err := os.Stat(zooKeeperJar); err == nil { // another test binary installed it meanwhile
			return nil
		}
		return installPackages(logf, strings.Fields(ZooKeeperInstallCommand))
	})
	if err != nil {
		return "", fmt.Errorf("%w and %q failed: %w", ErrNoZooKeeper, ZooKeeperInstallCommand, err)
	}
	java, _ = exec.LookPath("java")
	if _, err := os.Stat(zooKeeperJar); err != nil || java == "" {
		return "", fmt.Errorf("%w: still missing after %q", ErrNoZooKeeper, ZooKeeperInstallCommand)
	}
	return java, nil
}

func (z *ZooKeeper) start(java string) error {
	out, err := os.OpenFile(filepath.Join(z.Dir, "stdout.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open zookeeper stdout log: %w", err)
	}
	cmd := exec.Command(java, "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		"-Dzookeeper.log.dir="+z.Dir, "-Dlog4j.configuration=file:"+filepath.Join(z.Dir, "log4j.properties"),
		"-cp", zooKeeperJar+":"+z.Dir+":/usr/share/java/slf4j-simple.jar", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"org.apache.zookeeper.server.ZooKeeperServerMain", filepath.Join(z.Dir, "zoo.cfg"))
	cmd.Dir = z.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		out.Close()
		return fmt.Errorf("start zookeeper: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		out.Close()
		close(done)
	}()
	z.mu.Lock()
	z.cmd, z.done = cmd, done
	z.mu.Unlock()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if z.serving() {
			z.logf("chtest: zookeeper pid %d ready on %s in %v", cmd.Process.Pid, z.Addr, time.Since(begin).Round(time.Millisecond))
			return nil
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(z.Dir, "stdout.log"))
			return fmt.Errorf("zookeeper exited during start:\n%s", tail(log, 3000))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = z.Close()
			return errors.New("zookeeper not serving within 60s")
		}
	}
}

// serving sends ZooKeeper's "srvr" four-letter command and reports whether the server serves
// requests ("ruok" answers "imok" before that, while connections are still refused).
func (z *ZooKeeper) serving() bool {
	c, err := net.DialTimeout("tcp", z.Addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("srvr")); err != nil {
		return false
	}
	out, _ := io.ReadAll(c)
	return strings.Contains(string(out), "Mode: ")
}

// ConfigXML is the <zookeeper> section of a ClickHouse config.xml pointing at z.
func (z *ZooKeeper) ConfigXML() string {
	return fmt.Sprintf("    <zookeeper>\n        <node><host>127.0.0.1</host><port>%d</port></node>\n        <session_timeout_ms>6000</session_timeout_ms>\n    </zookeeper>\n", z.Port)
}

// Close kills ZooKeeper (its data directory is the caller's).
func (z *ZooKeeper) Close() error {
	z.mu.Lock()
	cmd, done := z.cmd, z.done
	z.cmd, z.done = nil, nil
	z.mu.Unlock()
	if cmd == nil {
		return nil
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-done:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("zookeeper did not exit after SIGKILL")
	}
}
