package loadtest

import (
	"bufio"
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/template"
)

// Targets the benchmarks are judged against (from the issues; none is asserted in a test).
const (
	TargetReadRatio     = 0.85   // reads through the sidecar, share of direct throughput
	TargetAuditedWrites = 3000.0 // audited POSTs per second through the sidecar, fsync on
	TargetVerifyRatio   = 0.50   // verify speed, share of raw SHA-256 speed, 1 KiB events
	TargetNullsink      = 50000  // events per second through the plugin boundary into a no-op sink
	TargetForwarding    = 20000  // events per second into rsyslog (TCP) and into the OpenTelemetry Collector
	TargetIntentsRatio  = 0.8    // audited writes with write-ahead intents, share of the design before them
	TargetIntentsP99    = 1.0    // ms of p99 that intents may add to paced audited writes
)

// Section is one section's raw output as scripts/bench.sh leaves it: NAME.cmd (the command),
// NAME.status (its exit status, or "skipped: why"), NAME.load (/proc/loadavg when it started),
// NAME.started, NAME.secs (wall seconds) and NAME.out (stdout and stderr).
type Section struct {
	Name    string
	Cmd     string
	Status  string
	Load    string
	Started string
	Seconds float64
	Out     string
	Bench   []BenchLine
}

// Ran reports whether the section's command was run.
func (s *Section) Ran() bool {
	return s != nil && s.Status != "" && !strings.HasPrefix(s.Status, "skipped")
}

// OK reports whether the section's command ran and exited 0.
func (s *Section) OK() bool { return s != nil && s.Status == "0" }

// Results is a results directory written by scripts/bench.sh.
type Results struct {
	Dir string
	// Meta holds meta.env: date, nproc, cpu_model, kernel, go_version, git_rev, quick, ...
	Meta     map[string]string
	Sections map[string]*Section
	// Proxy is proxy.json (nil when missing).
	Proxy *ProxyReport
	// ProxyServiceTime is proxy-service-time.json: the same comparison with a fake Flowker that
	// takes a realistic service time per request (nil when missing).
	ProxyServiceTime *ProxyReport
	// IntentsBefore and IntentsAfter are proxy-intents-{before,after}-N.json, in round order:
	// the design before write-ahead intents and this checkout, run alternately.
	IntentsBefore, IntentsAfter []*ProxyReport
	// ProfileTop is proxy-profile.top (pprof -top of the sidecar under audited POST load).
	ProfileTop string
	// UITiming is ui-timing.txt.
	UITiming string
}

// SectionNames are the sections bench.sh runs, in order.
var SectionNames = []string{"proxy", "proxy-service-time", "proxy-intents", "journal", "verify", "nullsink-write", "nullsink-delivery", "plugin-delivery",
	"sqlite-write", "sqlite-search", "clickhouse", "clickhouse-cluster", "ui"}

// LoadResults reads a results directory.
func LoadResults(dir string) (*Results, error) {
	r := &Results{Dir: dir, Meta: map[string]string{}, Sections: map[string]*Section{}}
	meta, err := os.ReadFile(filepath.Join(dir, "meta.env"))
	if err != nil {
		return nil, fmt.Errorf("reading the results directory: %w", err)
	}
	for _, line := range strings.Split(string(meta), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && k != "" {
			r.Meta[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return ""
		}
		return string(b)
	}
	for _, name := range SectionNames {
		s := &Section{Name: name, Cmd: strings.TrimSpace(read(name + ".cmd")), Status: strings.TrimSpace(read(name + ".status")),
			Load: strings.TrimSpace(read(name + ".load")), Started: strings.TrimSpace(read(name + ".started")), Out: read(name + ".out")}
		if s.Cmd == "" && s.Status == "" {
			continue
		}
		s.Seconds, _ = strconv.ParseFloat(strings.TrimSpace(read(name+".secs")), 64)
		if s.Bench, err = ParseBenchOutput(strings.NewReader(s.Out)); err != nil {
			return nil, fmt.Errorf("parsing %s.out: %w", name, err)
		}
		r.Sections[name] = s
	}
	if b := read("proxy.json"); b != "" {
		var p ProxyReport
		if err := json.Unmarshal([]byte(b), &p); err != nil {
			return nil, fmt.Errorf("parsing proxy.json: %w", err)
		}
		r.Proxy = &p
	}
	if b := read("proxy-service-time.json"); b != "" {
		var p ProxyReport
		if err := json.Unmarshal([]byte(b), &p); err != nil {
			return nil, fmt.Errorf("parsing proxy-service-time.json: %w", err)
		}
		r.ProxyServiceTime = &p
	}
	for _, v := range []string{"before", "after"} {
		for i := 1; ; i++ {
			name := fmt.Sprintf("proxy-intents-%s-%d.json", v, i)
			b := read(name)
			if b == "" {
				break
			}
			var p ProxyReport
			if err := json.Unmarshal([]byte(b), &p); err != nil {
				return nil, fmt.Errorf("parsing %s: %w", name, err)
			}
			if v == "before" {
				r.IntentsBefore = append(r.IntentsBefore, &p)
			} else {
				r.IntentsAfter = append(r.IntentsAfter, &p)
			}
		}
	}
	r.ProfileTop = read("proxy-profile.top")
	r.UITiming = strings.TrimSpace(read("ui-timing.txt"))
	return r, nil
}

// verdict is one line of the targets table.
type verdict struct {
	Target string
	// Measured are the figures, which the template joins with "; " (an em dash for none when
	// OrDash); Suffix follows them.
	Measured []string
	OrDash   bool
	Suffix   string
	Met      string // "**yes**", "**no**", "not measured", "reported", ...
}

//go:embed report.md.tmpl
var reportFS embed.FS

// reportTemplates holds the prose of the document, one named template per piece.
var reportTemplates = template.Must(template.New("report").Funcs(template.FuncMap{
	"rate":      rateOf,
	"ms":        fmtMs,
	"signed":    fmtSigned,
	"pct":       fmtPct,
	"trim":      trimFloat,
	"orDash":    orDash,
	"join":      strings.Join,
	"perSecond": func(ns float64) float64 { return 1e9 / ns },
	"rates":     func(v []float64) string { return roundsList(v, fmtRate) },
	"mslist":    func(v []float64) string { return roundsList(v, fmtMs) },
}).ParseFS(reportFS, "report.md.tmpl"))

type renderer struct {
	r        *Results
	b        bytes.Buffer
	verdicts []verdict
	err      error
}

// t writes the named template of report.md.tmpl with data.
func (x *renderer) t(name string, data any) {
	if x.err != nil {
		return
	}
	if err := reportTemplates.ExecuteTemplate(&x.b, name, data); err != nil {
		x.err = fmt.Errorf("rendering %s: %w", name, err)
	}
}

// s returns the named template of report.md.tmpl rendered with data.
func (x *renderer) s(name string, data any) string {
	var b strings.Builder
	if x.err == nil {
		if err := reportTemplates.ExecuteTemplate(&b, name, data); err != nil {
			x.err = fmt.Errorf("rendering %s: %w", name, err)
		}
	}
	return b.String()
}

// Render writes docs/BENCHMARKS.md for r.
func Render(w io.Writer, r *Results) error {
	x := &renderer{r: r}
	x.proxy()
	x.proxyServiceTime()
	x.proxyIntents()
	x.journal()
	x.verify()
	x.pluginBoundary()
	x.sqliteSearch()
	x.clickhouse()
	x.clickhouseCluster()
	x.ui()

	var first, last string
	for _, s := range r.Sections {
		if !s.Ran() || s.Started == "" {
			continue
		}
		if first == "" || s.Started < first {
			first = s.Started
		}
		if s.Started > last {
			last = s.Started
		}
	}
	body := x.b.Bytes()
	x.b = bytes.Buffer{}
	x.t("head", struct {
		Meta        map[string]string
		Earlier     bool
		First, Last string
		Fdatasync   string
		Verdicts    []verdict
	}{
		Meta: r.Meta,
		// Same "YYYY-MM-DD HH:MM" prefix format: some sections ran before this invocation.
		Earlier:   first != "" && r.Meta["date"] != "" && first < r.Meta["date"],
		First:     first,
		Last:      last,
		Fdatasync: x.fdatasyncSummary(),
		Verdicts:  x.verdicts,
	})
	if x.err != nil {
		return x.err
	}
	if _, err := w.Write(x.b.Bytes()); err != nil {
		return err
	}
	_, err := w.Write(body)
	return err
}

// header writes a section's command, when it ran, the load and its status; it returns false when
// there are no results to show.
func (x *renderer) header(s *Section, what string) bool {
	if s == nil {
		x.t("section-missing", what)
		return false
	}
	if strings.HasPrefix(s.Status, "skipped") {
		x.t("section-skipped", struct{ Why, Cmd string }{
			strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(s.Status, "skipped"), ":")), s.Cmd})
		return false
	}
	var notes []string
	if s.Started != "" {
		notes = append(notes, x.s("note-started", s.Started))
	}
	if s.Load != "" {
		notes = append(notes, x.s("note-load", s.Load))
	}
	if s.Seconds > 0 {
		notes = append(notes, x.s("note-took", s.Seconds))
	}
	x.t("section-command", struct {
		Notes       []string
		Cmd, Status string
		Tail        []string
		Failed      bool
	}{Notes: notes, Cmd: s.Cmd, Status: s.Status, Tail: lastLines(s.Out, 30), Failed: !s.OK()})
	return true
}

// verdict adds a line to the targets table: met or not when measuredOK, "not measured" otherwise.
func (x *renderer) verdict(target string, met, measuredOK bool, measured ...string) {
	word := "met-not-measured"
	switch {
	case measuredOK && met:
		word = "met-yes"
	case measuredOK:
		word = "met-no"
	}
	x.verdicts = append(x.verdicts, verdict{Target: target, Measured: measured, Met: x.s(word, nil)})
}

// verdictOrDash is verdict for figures that may be none (shown as an em dash).
func (x *renderer) verdictOrDash(target string, met, measuredOK bool, measured []string) {
	x.verdict(target, met, measuredOK, measured...)
	x.verdicts[len(x.verdicts)-1].OrDash = true
}

// notMeasured adds a line to the targets table for a target without a measurement.
func (x *renderer) notMeasured(target string) {
	x.verdict(target, false, false, x.s("not-measured", nil))
}

func (x *renderer) fdatasyncSummary() string {
	s := x.r.Sections["journal"]
	if s == nil {
		return x.s("not-measured", nil)
	}
	p50, n := Median(s.Bench, "BenchmarkFdatasync4KiB", "p50-ms")
	if n == 0 {
		return x.s("not-measured", nil)
	}
	p99, _ := Median(s.Bench, "BenchmarkFdatasync4KiB", "p99-ms")
	rate, _ := Median(s.Bench, "BenchmarkFdatasync4KiB", "syncs/s")
	return x.s("fdatasync", struct{ P50, P99, Rate float64 }{p50, p99, rate})
}

// ---- formatting

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "—"
	}
	return s
}

// rateOf is fmtRate for the integer and float figures the templates format.
func rateOf(v any) string {
	switch n := v.(type) {
	case float64:
		return fmtRate(n)
	case int:
		return fmtRate(float64(n))
	case int64:
		return fmtRate(float64(n))
	case uint64:
		return fmtRate(float64(n))
	default:
		return fmt.Sprint(v)
	}
}

// fmtRate formats v with no decimals and thousands separators.
func fmtRate(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	n := int64(math.Round(v))
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

// fmtMs formats milliseconds with three significant digits (at least two decimals below 1).
func fmtMs(v float64) string {
	a := math.Abs(v)
	switch {
	case a < 1:
		return strconv.FormatFloat(v, 'f', 3, 64)
	case a < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	default:
		return fmtRate(v)
	}
}

func fmtSigned(v float64) string {
	if v >= 0 {
		return "+" + fmtMs(v)
	}
	return fmtMs(v)
}

func fmtPct(ratio float64) string { return strconv.FormatFloat(ratio*100, 'f', 1, 64) + "%" }

func trimFloat(v float64, prec int) string {
	s := strconv.FormatFloat(v, 'f', prec, 64)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) []string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return lines[max(0, len(lines)-n):]
}

// grepLines returns the trimmed lines of s containing any of subs (log prefixes such as
// "bench_test.go:90:" are kept).
func grepLines(s string, subs ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		for _, sub := range subs {
			if strings.Contains(line, sub) && !slices.Contains(out, line) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}
