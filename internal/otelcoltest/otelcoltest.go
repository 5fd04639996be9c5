// Package otelcoltest runs a real OpenTelemetry Collector for tests: the one built from the Go
// module in ./collector (the OTLP receiver, gRPC and HTTP, and the file exporter), started as a
// separate process on free loopback ports, writing every log record it receives to a file the
// test reads back.
//
// The collector is built with `go build` on first use and the binary kept in the user's cache
// directory (os.UserCacheDir()/flowker-audit), keyed by a hash of the module's files, so later
// runs start at once. The first, cold build compiles the collector's dependencies (a few
// minutes on two cores; warm Go build cache: seconds). The collector module has its own go.mod
// so none of that reaches the flowker-audit binary.
package otelcoltest

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/internal/proctest"
)

// Options configures a collector.
type Options struct {
	// TLS, when set, makes both receivers speak TLS with this certificate and key.
	TLS *TLS
}

// TLS is the receivers' certificate; with ClientCA set, clients must present a certificate it
// signed (mutual TLS).
type TLS struct{ Cert, Key, ClientCA string }

// Collector is a running (or stopped) collector.
type Collector struct {
	bin, dir, conf string
	// GRPCAddr and HTTPAddr are the OTLP receivers' 127.0.0.1:port (the same across restarts).
	GRPCAddr, HTTPAddr string
	// Out is the file exporter's file (OTLP JSON, one export request per line).
	Out string

	proc *proctest.Process
}

// Start starts a collector and waits until both receivers accept connections. It is stopped
// when the test ends.
func Start(t testing.TB, o Options) *Collector {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	c := &Collector{bin: bin, dir: dir, conf: filepath.Join(dir, "config.yaml"), Out: filepath.Join(dir, "logs.jsonl")}
	c.proc = proctest.New("otelcoltest: the collector", filepath.Join(dir, "collector.out"), bin, "--config", c.conf)
	ports, err := proctest.FreePorts(2)
	if err != nil {
		t.Fatal(err)
	}
	c.GRPCAddr, c.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	tlsBlock := ""
	if o.TLS != nil {
		clientCA := ""
		if o.TLS.ClientCA != "" {
			clientCA = fmt.Sprintf(", client_ca_file: %q", o.TLS.ClientCA)
		}
		tlsBlock = fmt.Sprintf("\n        tls: {cert_file: %q, key_file: %q%s}", o.TLS.Cert, o.TLS.Key, clientCA)
	}
	conf := fmt.Sprintf(`receivers:
  otlp:
    protocols:
      grpc:
        endpoint: %q%s
      http:
        endpoint: %q%s
exporters:
  file:
    path: %q
    append: true
    flush_interval: 100ms
service:
  pipelines:
    logs:
      receivers: [otlp]
      exporters: [file]
`, c.GRPCAddr, tlsBlock, c.HTTPAddr, tlsBlock, c.Out)
	if err := os.WriteFile(c.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Stop(syscall.SIGTERM) })
	return c
}

// Restart starts the collector again (after Stop) on the same ports, appending to the same
// file, and waits until both receivers accept connections. It may be called from any
// goroutine.
func (c *Collector) Restart() error { return c.proc.Start(60*time.Second, c.GRPCAddr, c.HTTPAddr) }

// Stop sends sig to the collector (SIGTERM: an orderly shutdown, which flushes the file
// exporter; SIGKILL: a crash, losing what the exporter had buffered) and waits for it to exit.
func (c *Collector) Stop(sig syscall.Signal) { c.proc.Stop(sig) }

// Pid returns the running collector's process id (0 when stopped).
func (c *Collector) Pid() int { return c.proc.Pid() }

// Record is one received log record, flattened.
type Record struct {
	Resource     map[string]string // resource attributes (string values)
	Scope        string
	EventName    string
	Severity     int
	SeverityText string
	TimeUnixNano string
	Body         string
	Attributes   map[string]any // string values as string, int values as string (OTLP JSON)
}

// Records reads every record written so far. A request cut short by a crash (SIGKILL) is
// skipped and counted in torn; the requests written after the restart are kept.
func (c *Collector) Records() (recs []Record, torn int, err error) {
	b, err := os.ReadFile(c.Out)
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 64<<20)
	for sc.Scan() {
		for _, part := range requests(sc.Bytes()) {
			var req exportRequest
			if err := json.Unmarshal(part, &req); err != nil {
				torn++
				continue
			}
			recs = appendRecords(recs, &req)
		}
	}
	return recs, torn, sc.Err()
}

// requestStart starts every line the file exporter writes.
var requestStart = []byte(`{"resourceLogs":`)

// requests splits a line of the exporter's file into the requests it holds: one, unless a
// crash cut a request short (the exporter buffers up to 4 KiB, and the line's newline, until
// its next flush) and the first request after the restart was appended to the fragment.
func requests(line []byte) [][]byte {
	var out [][]byte
	for len(line) > 0 {
		next := bytes.Index(line[1:], requestStart)
		if next < 0 {
			return append(out, line)
		}
		out = append(out, line[:next+1])
		line = line[next+1:]
	}
	return out
}

func appendRecords(recs []Record, req *exportRequest) []Record {
	for _, rl := range req.ResourceLogs {
		res := map[string]string{}
		for _, a := range rl.Resource.Attributes {
			res[a.Key] = a.Value.String()
		}
		for _, sl := range rl.ScopeLogs {
			for _, lr := range sl.LogRecords {
				r := Record{Resource: res, Scope: sl.Scope.Name, EventName: lr.EventName, Severity: lr.SeverityNumber,
					SeverityText: lr.SeverityText, TimeUnixNano: lr.TimeUnixNano, Body: lr.Body.String(), Attributes: map[string]any{}}
				for _, a := range lr.Attributes {
					r.Attributes[a.Key] = a.Value.String()
				}
				recs = append(recs, r)
			}
		}
	}
	return recs
}

// exportRequest is the OTLP JSON shape of the file exporter's lines (the parts read here).
type exportRequest struct {
	ResourceLogs []struct {
		Resource struct {
			Attributes []keyValue `json:"attributes"`
		} `json:"resource"`
		ScopeLogs []struct {
			Scope struct {
				Name string `json:"name"`
			} `json:"scope"`
			LogRecords []struct {
				TimeUnixNano   string     `json:"timeUnixNano"`
				SeverityNumber int        `json:"severityNumber"`
				SeverityText   string     `json:"severityText"`
				EventName      string     `json:"eventName"`
				Body           anyValue   `json:"body"`
				Attributes     []keyValue `json:"attributes"`
			} `json:"logRecords"`
		} `json:"scopeLogs"`
	} `json:"resourceLogs"`
}

type keyValue struct {
	Key   string   `json:"key"`
	Value anyValue `json:"value"`
}

type anyValue struct {
	StringValue *string `json:"stringValue"`
	IntValue    *string `json:"intValue"`
}

func (v anyValue) String() string {
	switch {
	case v.StringValue != nil:
		return *v.StringValue
	case v.IntValue != nil:
		return *v.IntValue
	}
	return ""
}

var buildMu sync.Mutex

// Binary returns the path of the collector binary, building it when the cached one is missing
// or its sources changed.
func Binary(t testing.TB) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("otelcoltest: go env GOMOD: %v", err)
	}
	src := filepath.Join(filepath.Dir(strings.TrimSpace(string(gomod))), "internal", "otelcoltest", "collector")
	h := sha256.New()
	for _, f := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatalf("otelcoltest: %v", err)
		}
		fmt.Fprintf(h, "%s %d\n", f, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "flowker-audit")
	bin := filepath.Join(dir, "otelcol-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("otelcoltest: %v", err)
	}
	// Test binaries of several packages run at once: one builds, the others wait for it.
	lock, err := os.OpenFile(filepath.Join(dir, "otelcol.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("otelcoltest: %v", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("otelcoltest: locking %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	if _, err := os.Stat(bin); err == nil {
		return bin // built by another process meanwhile
	}
	tmp := fmt.Sprintf("%s.tmp-%d", bin, os.Getpid())
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", tmp, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("otelcoltest: building the collector in %s: %v\n%s", src, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatalf("otelcoltest: %v", err)
	}
	t.Logf("otelcoltest: built the collector in %s: %s", time.Since(start).Round(time.Second), bin)
	return bin
}
