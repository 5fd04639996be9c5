package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Credentials of the proxy benchmark. The fake Flowker requires FlowkerKey on every /v1 route,
// direct and through the sidecar alike, so both paths do the same work upstream.
const (
	FlowkerKey = "bench-flowker-key-0001"
	AuditKey   = "bench-audit-key-0001"
)

// ProxyBenchOptions configure RunProxyBench.
type ProxyBenchOptions struct {
	// Binary is the flowker-audit executable (make build: bin/flowker-audit).
	Binary string
	// WorkDir holds the generated configuration, the sidecar's data_dir and the children's logs.
	// Empty: a temporary directory, removed afterwards.
	WorkDir string
	// Concurrency lists the closed-loop concurrencies to run (default 32 and 64).
	Concurrency []int
	// Warmup and Duration of every run (defaults 3s and 10s).
	Warmup, Duration time.Duration
	// Rounds repeats each direct/sidecar pair, alternating, to expose drift (default 1).
	Rounds int
	// Methods are the requests to run, GET and/or POST (default both).
	Methods []string
	// Rate, when positive, adds paced runs at this many requests per second (with the largest
	// concurrency as the worker pool), to measure added latency away from saturation.
	Rate float64
	// ProfileFile, when set, receives a CPU profile of the sidecar taken during an extra audited
	// POST run at the largest concurrency (not part of the measured numbers).
	ProfileFile    string
	ProfileSeconds int
	// ProfileMethod is the request of the profiled run: POST (the default) or GET.
	ProfileMethod string
	// Fsync is the journal.fsync of the sidecar (the benchmark's point is true).
	Fsync bool
	// SidecarCPUs and FakeCPUs, when set, pin the sidecar (with its plugins) and the fake Flowker
	// to these CPUs (a taskset(1) list such as "1" or "0-1"). Run the benchmark itself under
	// taskset to pin the load generator. Empty: the scheduler decides (the default).
	SidecarCPUs, FakeCPUs string
	// FakeLatency is a service time the fake Flowker adds to every response (0: none), to model
	// a real Flowker's database round trips.
	FakeLatency time.Duration
	// Logf receives progress lines (nil: discarded).
	Logf func(format string, args ...any)
}

// ProxyReport is the outcome of RunProxyBench, written as JSON by cmd/proxybench.
type ProxyReport struct {
	Started    time.Time  `json:"started"`
	Binary     string     `json:"binary"`
	Config     string     `json:"sidecarConfig"`
	BodyBytes  int        `json:"postBodyBytes"`
	Warmup     float64    `json:"warmupSeconds"`
	Duration   float64    `json:"durationSeconds"`
	Runs       []ProxyRun `json:"runs"`
	EventCheck EventCheck `json:"eventCheck"`
	Profile    string     `json:"profile,omitempty"`
	// SidecarCPUs and FakeCPUs record the pinning, when there was one.
	SidecarCPUs string `json:"sidecarCpus,omitempty"`
	FakeCPUs    string `json:"fakeCpus,omitempty"`
	// FakeLatency is the fake Flowker's added service time, in seconds.
	FakeLatency float64 `json:"fakeLatency,omitempty"`
	// ProfileRun is the unmeasured run during which the profile was taken.
	ProfileRun *ProxyRun `json:"profileRun,omitempty"`
}

// ProxyRun is one load run and the CPU each process used during its measured window.
type ProxyRun struct {
	Result
	Method string `json:"method"` // GET or POST
	Via    string `json:"via"`    // direct or sidecar
	Round  int    `json:"round"`
	// CPU is in cores (CPU seconds per second of the window).
	CPU CPUUse `json:"cpuCores"`
	// Journal splits an audited run's latency by the journal's durable writes (POSTs through the
	// sidecar only).
	Journal *JournalWaits `json:"journal,omitempty"`
}

// CPUUse is CPU seconds per wall second over a measured window, per process.
type CPUUse struct {
	Loadgen float64 `json:"loadgen"`
	Fake    float64 `json:"fakeFlowker"`
	// Sidecar includes its plugin processes.
	Sidecar float64 `json:"sidecar"`
}

// EventCheck compares the successful audited requests with what the sidecar journaled and what
// its audit API serves and verifies.
type EventCheck struct {
	// SidecarPOSTs counts POSTs through the sidecar answered 201, warm-ups and the profile run
	// included; SidecarPOSTErrors the others.
	SidecarPOSTs      int64 `json:"sidecarPosts"`
	SidecarPOSTErrors int64 `json:"sidecarPostErrors"`
	// JournalAppended is flowker_audit_journal_appended_events_total at the end.
	JournalAppended float64 `json:"journalAppended"`
	// EventsRecorded is flowker_audit_events_total (every event type and result).
	EventsRecorded float64 `json:"eventsRecorded"`
	// Commits and GroupMean come from flowker_audit_journal_group_commit_events.
	Commits   float64 `json:"groupCommits"`
	GroupMean float64 `json:"groupMean"`
	Fsyncs    float64 `json:"fsyncs"`
	// SinkWritten is flowker_audit_sink_written_events_total once the sink caught up.
	SinkWritten float64 `json:"sinkWritten"`
	// APIHeadSequence is the sequence of the newest event served by GET /v1/audit-events, and
	// APIVerified / APIValid the answer of its /verify.
	APIHeadSequence uint64 `json:"apiHeadSequence"`
	APIVerified     uint64 `json:"apiVerified"`
	APIValid        bool   `json:"apiValid"`
	APIError        string `json:"apiError,omitempty"`
	// OK: every count agrees and the chain verified.
	OK bool `json:"ok"`
}

// RunProxyBench starts the fake Flowker and the sidecar from o.Binary as child processes and
// measures GET and audited POST, direct to the fake versus through the sidecar.
func RunProxyBench(ctx context.Context, o ProxyBenchOptions) (*ProxyReport, error) {
	if o.Binary == "" {
		return nil, errors.New("proxy bench: the flowker-audit binary is required")
	}
	if len(o.Concurrency) == 0 {
		o.Concurrency = []int{32, 64}
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
	}
	if o.Duration == 0 {
		o.Duration = 10 * time.Second
	}
	if o.Rounds <= 0 {
		o.Rounds = 1
	}
	if len(o.Methods) == 0 {
		o.Methods = []string{http.MethodGet, http.MethodPost}
	}
	for _, m := range o.Methods {
		if m != http.MethodGet && m != http.MethodPost {
			return nil, fmt.Errorf("method %q: want GET or POST", m)
		}
	}
	if o.ProfileSeconds <= 0 {
		o.ProfileSeconds = 5
	}
	logf := o.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return nil, err
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "flowker-audit-proxybench-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	fakeAddr := fmt.Sprintf("127.0.0.1:%d", ports[0])
	proxyAddr := fmt.Sprintf("127.0.0.1:%d", ports[1])
	adminAddr := fmt.Sprintf("127.0.0.1:%d", ports[2])
	cfgText := SidecarConfig(fakeAddr, proxyAddr, adminAddr, filepath.Join(work, "data"), o.Fsync)
	cfgPath := filepath.Join(work, "config.yaml")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		return nil, err
	}

	fake, err := startChild(o.FakeCPUs, bin, filepath.Join(work, "fake-flowker.log"), "fake-flowker", "--listen", fakeAddr, "--api-key", FlowkerKey,
		"--execution-delay", "50ms", "--latency", o.FakeLatency.String())
	if err != nil {
		return nil, err
	}
	defer fake.stop()
	fakeURL, proxyURL, adminURL := "http://"+fakeAddr, "http://"+proxyAddr, "http://"+adminAddr
	if err := waitReady(ctx, fake, fakeURL+"/readyz"); err != nil {
		return nil, err
	}
	side, err := startChild(o.SidecarCPUs, bin, filepath.Join(work, "sidecar.log"), "serve", "--config", cfgPath)
	if err != nil {
		return nil, err
	}
	defer side.stop()
	if err := waitReady(ctx, side, adminURL+"/readyz"); err != nil {
		return nil, err
	}
	logf("fake Flowker on %s (pid %d), sidecar on %s (pid %d), admin %s", fakeAddr, fake.cmd.Process.Pid, proxyAddr, side.cmd.Process.Pid, adminAddr)

	// One workflow to read.
	admin := &http.Client{Timeout: 30 * time.Second}
	wfID, err := createWorkflow(ctx, admin, fakeURL)
	if err != nil {
		return nil, err
	}
	body := postBody(0)
	rep := &ProxyReport{Started: time.Now().UTC(), Binary: o.Binary, Config: cfgText, BodyBytes: len(body),
		Warmup: o.Warmup.Seconds(), Duration: o.Duration.Seconds(), SidecarCPUs: o.SidecarCPUs, FakeCPUs: o.FakeCPUs, FakeLatency: o.FakeLatency.Seconds()}

	get := func(base string) func(ctx context.Context, i uint64) (*http.Request, error) {
		url := base + "/v1/workflows/" + wfID
		return func(ctx context.Context, _ uint64) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err == nil {
				r.Header.Set("X-API-Key", FlowkerKey)
			}
			return r, err
		}
	}
	post := func(base string) func(ctx context.Context, i uint64) (*http.Request, error) {
		url := base + "/v1/workflows"
		return func(ctx context.Context, i uint64) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(postBody(i)))
			if err == nil {
				r.Header.Set("X-API-Key", FlowkerKey)
				r.Header.Set("Content-Type", "application/json")
			}
			return r, err
		}
	}
	pids := [2]int{fake.cmd.Process.Pid, side.cmd.Process.Pid}
	var check EventCheck
	run := func(method, via string, round int, lo Options) (ProxyRun, error) {
		base := fakeURL
		if via == "sidecar" {
			base = proxyURL
		}
		t := Target{Name: method + " " + via, NewRequest: get(base), Expect: http.StatusOK}
		if method == http.MethodPost {
			t.NewRequest, t.Expect = post(base), http.StatusCreated
		}
		var c0, c1 [3]time.Duration
		var w0, w1 time.Time
		audited := method == http.MethodPost && via == "sidecar"
		var h0, h1 histSnapshot
		var hErr error
		lo.OnWindow = func(start bool) {
			s := [3]time.Duration{selfCPU()}
			s[1], _ = processTreeCPU(pids[0])
			s[2], _ = processTreeCPU(pids[1])
			if start {
				c0, w0 = s, time.Now()
			} else {
				c1, w1 = s, time.Now()
			}
			if audited && hErr == nil {
				h, err := scrapeHistograms(ctx, admin, adminURL)
				if start {
					h0, hErr = h, err
				} else {
					h1, hErr = h, err
				}
			}
		}
		res, err := Run(ctx, lo, t)
		if err != nil {
			return ProxyRun{}, err
		}
		pr := ProxyRun{Result: res, Method: method, Via: via, Round: round}
		if audited && hErr == nil {
			pr.Journal = journalWaits(h0, h1)
		}
		if wall := w1.Sub(w0).Seconds(); wall > 0 {
			pr.CPU = CPUUse{Loadgen: (c1[0] - c0[0]).Seconds() / wall, Fake: (c1[1] - c0[1]).Seconds() / wall, Sidecar: (c1[2] - c0[2]).Seconds() / wall}
		}
		if method == http.MethodPost && via == "sidecar" {
			check.SidecarPOSTs += res.TotalSuccess
			check.SidecarPOSTErrors += res.TotalErrors
			// Let the sink catch up so that its work does not leak into the next run.
			if err := waitSinkCaughtUp(ctx, admin, adminURL, 2*time.Minute); err != nil {
				return pr, err
			}
		}
		logf("%-12s c=%-3d rate=%-5.0f round %d: %8.0f req/s  p50 %6.2f ms  p99 %6.2f ms  errors %d (cpu: loadgen %.2f, fake %.2f, sidecar %.2f)",
			t.Name, lo.Concurrency, lo.Rate, round, res.RPS, res.P50, res.P99, res.Errors, pr.CPU.Loadgen, pr.CPU.Fake, pr.CPU.Sidecar)
		if w := pr.Journal; w != nil {
			logf("  journal waits: intent p50 %.2f p99 %.2f ms, event p50 %.2f p99 %.2f ms, commit p99 %.2f ms, %.3f commits and %.3f fsyncs per request",
				w.IntentP50Ms, w.IntentP99Ms, w.EventP50Ms, w.EventP99Ms, w.CommitP99Ms, w.CommitsPerRequest, w.FsyncsPerRequest)
		}
		return pr, nil
	}

	for _, c := range o.Concurrency {
		for _, method := range o.Methods {
			for round := 1; round <= o.Rounds; round++ {
				vias := []string{"direct", "sidecar"}
				if round%2 == 0 {
					vias = []string{"sidecar", "direct"}
				}
				for _, via := range vias {
					pr, err := run(method, via, round, Options{Concurrency: c, Warmup: o.Warmup, Duration: o.Duration})
					if err != nil {
						return nil, err
					}
					rep.Runs = append(rep.Runs, pr)
				}
			}
		}
	}
	if o.Rate > 0 {
		c := slices.Max(o.Concurrency)
		for _, method := range o.Methods {
			for _, via := range []string{"direct", "sidecar"} {
				pr, err := run(method, via, 1, Options{Concurrency: c, Rate: o.Rate, Warmup: o.Warmup, Duration: o.Duration})
				if err != nil {
					return nil, err
				}
				rep.Runs = append(rep.Runs, pr)
			}
		}
	}
	if o.ProfileFile != "" {
		c := slices.Max(o.Concurrency)
		profErr := make(chan error, 1)
		warm := 2 * time.Second
		go func() {
			select {
			case <-time.After(warm):
			case <-ctx.Done():
				profErr <- ctx.Err()
				return
			}
			profErr <- fetchProfile(ctx, adminURL, o.ProfileSeconds, o.ProfileFile)
		}()
		method := http.MethodPost
		if o.ProfileMethod == http.MethodGet {
			method = http.MethodGet
		}
		pr, err := run(method, "sidecar", 0, Options{Concurrency: c, Warmup: warm, Duration: time.Duration(o.ProfileSeconds+1) * time.Second})
		if err != nil {
			return nil, err
		}
		if err := <-profErr; err != nil {
			logf("CPU profile failed: %v", err)
		} else {
			rep.Profile = o.ProfileFile
		}
		pr.Name = method + " sidecar (profiled, not measured)"
		rep.ProfileRun = &pr
	}

	if err := checkEvents(ctx, admin, adminURL, proxyURL, &check); err != nil {
		check.APIError = err.Error()
	}
	check.OK = check.APIError == "" && check.SidecarPOSTErrors == 0 &&
		float64(check.SidecarPOSTs) == check.JournalAppended && check.JournalAppended == check.EventsRecorded &&
		check.SinkWritten == check.JournalAppended && check.APIHeadSequence == uint64(check.JournalAppended) &&
		check.APIValid && check.APIVerified == uint64(check.JournalAppended)
	rep.EventCheck = check
	logf("event check: %d successful POSTs through the sidecar, %.0f journaled, %.0f recorded, %.0f written to the sink; API head sequence %d, verify valid=%v over %d events (%.0f group commits, mean %.1f events/commit); ok=%v",
		check.SidecarPOSTs, check.JournalAppended, check.EventsRecorded, check.SinkWritten, check.APIHeadSequence, check.APIValid, check.APIVerified, check.Commits, check.GroupMean, check.OK)
	return rep, nil
}

// SidecarConfig is the configuration the proxy benchmark runs the sidecar with: the shipped
// defaults, except the addresses, the data directory, static audit and watcher keys, warn-level
// logs and /debug/pprof on the admin listener.
func SidecarConfig(upstream, listen, admin, dataDir string, fsync bool) string {
	return fmt.Sprintf(`# generated by internal/loadtest (make bench): the shipped defaults except where noted
version: 1
upstream:
  url: http://%s
listen:
  addr: %q
admin:
  addr: %q
  pprof: true
data_dir: %q
journal:
  fsync: %v
auth:
  api_keys: [%q]
watcher:
  enabled: true
  api_key: %q
sinks:
  - name: store
    plugin: sqlite
    query: true
    config:
      path: %q
log:
  format: json
  level: warn
`, upstream, listen, admin, dataDir, fsync, AuditKey, FlowkerKey, filepath.Join(dataDir, "audit.db"))
}

// postBody is the i-th workflow created by the POST runs: about 1 KiB of JSON.
func postBody(i uint64) []byte {
	return fmt.Appendf(nil, `{"name":"bench-%d","description":"%s","nodes":[{"id":"hook","type":"trigger","data":{"triggerType":"webhook","path":"/bench/%d","method":"POST"}}],"metadata":{"team":"payments","costCenter":"cc-1042","owner":"bench@example.com","tags":["bench","load","audit"]}}`,
		i, strings.Repeat("Benchmark workflow created by make bench. ", 17), i)
}

func createWorkflow(ctx context.Context, c *http.Client, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/workflows", bytes.NewReader(postBody(1<<62)))
	if err != nil {
		return "", err
	}
	req.Header.Set("X-API-Key", FlowkerKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("creating the workflow to read: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		WorkflowID string `json:"workflowId"`
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(b, &out) != nil || out.WorkflowID == "" {
		return "", fmt.Errorf("creating the workflow to read: status %d: %s", resp.StatusCode, b)
	}
	return out.WorkflowID, nil
}

// child is a process started by the benchmark.
type child struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

func startChild(cpus, bin, logPath string, args ...string) (*child, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	if cpus != "" {
		cmd = exec.Command("taskset", append([]string{"-c", cpus, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = f, f
	// The children get this environment minus FLOWKER_AUDIT_* overrides, so that the generated
	// configuration is exactly what runs.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "FLOWKER_AUDIT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	dieWithParent(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s: %w", strings.Join(cmd.Args, " "), err)
	}
	c := &child{cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to 30s, then kills.
func (c *child) stop() {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

func (c *child) tail() string {
	b, _ := os.ReadFile(c.log)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func waitReady(ctx context.Context, c *child, url string) error {
	deadline := time.Now().Add(60 * time.Second)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c.exited() {
			return fmt.Errorf("%s exited before it was ready (%v):\n%s", c.cmd.Args[1], c.err, c.tail())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready at %s after 60s:\n%s", c.cmd.Args[1], url, c.tail())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func freePorts(n int) ([]int, error) {
	var out []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// Metrics is a scrape of a Prometheus text exposition: sample values by metric name, summed
// over label sets.
type Metrics map[string]float64

// ParseMetrics reads the Prometheus (or OpenMetrics) text format, summing the samples of each
// name over their labels.
func ParseMetrics(r io.Reader) (Metrics, error) {
	m := Metrics{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, rest := line, ""
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name, rest = line[:i], line[i:]
		}
		if strings.HasPrefix(rest, "{") {
			j := strings.LastIndexByte(rest, '}')
			if j < 0 {
				return nil, fmt.Errorf("metrics: malformed line %q", line)
			}
			rest = rest[j+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics: no value in %q", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics: value of %q: %w", line, err)
		}
		m[name] += v
	}
	return m, sc.Err()
}

func scrape(ctx context.Context, c *http.Client, adminURL string) (Metrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping the sidecar's metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping the sidecar's metrics: status %d", resp.StatusCode)
	}
	return ParseMetrics(resp.Body)
}

func waitSinkCaughtUp(ctx context.Context, c *http.Client, adminURL string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		m, err := scrape(ctx, c, adminURL)
		if err != nil {
			return err
		}
		// No intent pending: every answered request's event is appended (it can be committed
		// just after its answer).
		if m["flowker_audit_sink_lag_events"] == 0 && m["flowker_audit_sink_written_events_total"] >= m["flowker_audit_journal_appended_events_total"] &&
			m["flowker_audit_intents_pending"] == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the sink did not catch up within %v (lag %.0f events)", limit, m["flowker_audit_sink_lag_events"])
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func checkEvents(ctx context.Context, c *http.Client, adminURL, proxyURL string, ch *EventCheck) error {
	if err := waitSinkCaughtUp(ctx, c, adminURL, 2*time.Minute); err != nil {
		return err
	}
	m, err := scrape(ctx, c, adminURL)
	if err != nil {
		return err
	}
	ch.JournalAppended = m["flowker_audit_journal_appended_events_total"]
	ch.EventsRecorded = m["flowker_audit_events_total"]
	ch.Commits = m["flowker_audit_journal_group_commit_events_count"]
	if ch.Commits > 0 {
		ch.GroupMean = m["flowker_audit_journal_group_commit_events_sum"] / ch.Commits
	}
	ch.Fsyncs = m["flowker_audit_journal_fsyncs_total"]
	ch.SinkWritten = m["flowker_audit_sink_written_events_total"]

	get := func(path string, out any) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, proxyURL+path, nil)
		if err != nil {
			return err
		}
		req.Header.Set("X-API-Key", AuditKey)
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: status %d: %.300s", path, resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("GET %s: %w", path, err)
		}
		return nil
	}
	var page struct {
		Items []struct {
			EventID  string `json:"eventId"`
			Sequence uint64 `json:"sequence"`
		} `json:"items"`
	}
	if err := get("/v1/audit-events?limit=1", &page); err != nil {
		return err
	}
	if len(page.Items) == 0 {
		return errors.New("the audit API returned no event")
	}
	ch.APIHeadSequence = page.Items[0].Sequence
	var v struct {
		IsValid      bool   `json:"isValid"`
		TotalChecked uint64 `json:"totalChecked"`
	}
	if err := get("/v1/audit-events/"+page.Items[0].EventID+"/verify", &v); err != nil {
		return err
	}
	ch.APIValid, ch.APIVerified = v.IsValid, v.TotalChecked
	return nil
}

func fetchProfile(ctx context.Context, adminURL string, seconds int, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", adminURL, seconds), nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Timeout: time.Duration(seconds+30) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("profile: status %d: %.200s", resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
