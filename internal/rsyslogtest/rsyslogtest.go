// Package rsyslogtest starts Debian's rsyslogd for tests: one instance per test, listening on
// a free loopback port (plain TCP, or TLS through the gtls driver of the rsyslog-gnutls
// package), writing every message it receives to a file the test reads back.
//
// Each line of that file is "@@@PRI<TAB>HOSTNAME<TAB>APP-NAME<TAB>MSGID<TAB>STRUCTURED-DATA<TAB>MSG"
// as rsyslog parsed the RFC 5424 message. The main queue is Direct and the file action
// flushes at the end of every batch, so what rsyslog read from a connection is in the file
// (the page cache) before it reads more: stopping or killing it loses only what sat unread in
// its socket buffer.
//
// scripts/test-deps.sh installs rsyslog and rsyslog-gnutls.
package rsyslogtest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/proctest"
)

// Binary is rsyslogd's path in Debian's package.
const Binary = "/usr/sbin/rsyslogd"

// Options configures a server.
type Options struct {
	// TLS, when set, makes the listener speak TLS (RFC 5425) with this certificate.
	TLS *TLS
}

// TLS holds the server side of TLS.
type TLS struct {
	CA, Cert, Key string // PEM files
	// ClientAuth requires clients to present a certificate signed by CA.
	ClientAuth bool
}

// Server is a running (or stopped) rsyslogd.
type Server struct {
	dir  string
	proc *proctest.Process
	// Addr is the listener, 127.0.0.1:port (the same across restarts).
	Addr string
	// Out is the file received messages are written to.
	Out string
}

// Start starts rsyslogd and waits until it accepts connections. It is stopped when the test
// ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatalf("rsyslogtest: %v (run scripts/test-deps.sh, or apt-get install rsyslog rsyslog-gnutls)", err)
	}
	dir := t.TempDir()
	s := &Server{dir: dir, Out: filepath.Join(dir, "received.log")}
	conf := filepath.Join(dir, "rsyslog.conf")
	s.proc = proctest.New("rsyslogtest: rsyslogd", filepath.Join(dir, "rsyslogd.out"), Binary, "-n", "-f", conf, "-i", s.pidFile())
	ports, err := proctest.FreePorts(1)
	if err != nil {
		t.Fatalf("rsyslogtest: %v", err)
	}
	s.Addr = fmt.Sprintf("127.0.0.1:%d", ports[0])
	if err := os.WriteFile(conf, []byte(config(dir, s.Out, ports[0], o)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Stop(syscall.SIGTERM) })
	return s
}

func config(dir, out string, port int, o Options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global(workDirectory=%q maxMessageSize=\"1m\"", dir)
	if o.TLS != nil {
		fmt.Fprintf(&b, " defaultNetstreamDriver=\"gtls\" defaultNetstreamDriverCAFile=%q defaultNetstreamDriverCertFile=%q defaultNetstreamDriverKeyFile=%q",
			o.TLS.CA, o.TLS.Cert, o.TLS.Key)
	}
	b.WriteString(")\n")
	b.WriteString("main_queue(queue.type=\"Direct\")\n")
	if o.TLS != nil {
		auth := "anon"
		if o.TLS.ClientAuth {
			auth = "x509/certvalid"
		}
		fmt.Fprintf(&b, "module(load=\"imtcp\" streamDriver.name=\"gtls\" streamDriver.mode=\"1\" streamDriver.authMode=%q)\n", auth)
	} else {
		b.WriteString("module(load=\"imtcp\")\n")
	}
	fmt.Fprintf(&b, "input(type=\"imtcp\" address=\"127.0.0.1\" port=\"%d\")\n", port)
	b.WriteString("template(name=\"fields\" type=\"string\" string=\"@@@%pri%\\t%hostname%\\t%app-name%\\t%msgid%\\t%structured-data%\\t%msg%\\n\")\n")
	fmt.Fprintf(&b, "action(type=\"omfile\" file=%q template=\"fields\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n", out)
	return b.String()
}

func (s *Server) pidFile() string { return filepath.Join(s.dir, "rsyslogd.pid") }

// Restart starts rsyslogd again (after Stop) on the same port, appending to the same file, and
// waits until it accepts connections. It may be called from any goroutine.
func (s *Server) Restart() error {
	_ = os.Remove(s.pidFile()) // a killed rsyslogd leaves it behind
	return s.proc.Start(30*time.Second, s.Addr)
}

// Stop sends sig to rsyslogd (SIGTERM: an orderly stop; SIGKILL: a crash) and waits for it to
// exit. It does nothing when rsyslogd is not running.
func (s *Server) Stop(sig syscall.Signal) { s.proc.Stop(sig) }

// Pid returns the running rsyslogd's process id (0 when stopped).
func (s *Server) Pid() int { return s.proc.Pid() }

// Message is one received message as rsyslog parsed it.
type Message struct {
	PRI, Hostname, AppName, MsgID, StructuredData, Msg string
}

// recordStart starts every record of the output file.
var recordStart = regexp.MustCompile(`@@@[0-9]+\t`)

// Messages reads every message received so far. torn counts records cut short in the file: when
// rsyslogd is killed in the middle of writing a record, the next one (after a restart) follows
// the fragment on the same line; fragments are skipped and counted, the records after them kept.
func (s *Server) Messages() (msgs []Message, torn int, err error) {
	b, err := os.ReadFile(s.Out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		starts := recordStart.FindAllStringIndex(line, -1)
		if len(starts) == 0 || starts[0][0] != 0 {
			torn++
			continue
		}
		for i, st := range starts {
			end := len(line)
			if i+1 < len(starts) {
				end = starts[i+1][0]
			}
			rec := line[st[0]+3 : end]
			f := strings.Split(rec, "\t")
			if len(f) != 6 || i+1 < len(starts) {
				torn++
				continue
			}
			msgs = append(msgs, Message{PRI: f[0], Hostname: f[1], AppName: f[2], MsgID: f[3], StructuredData: f[4], Msg: f[5]})
		}
	}
	return msgs, torn, nil
}
