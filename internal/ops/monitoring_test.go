package ops

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

func docPath(t testing.TB) string {
	return filepath.Join(testenv.ModuleRoot(t), "docs", "OPERATIONS.md")
}

// requiredAlerts are the alerts operators were promised, by what they watch.
var requiredAlerts = map[string]string{
	"FlowkerAuditEventsLost":         "events lost > 0",
	"FlowkerAuditSinkLagHigh":        "sink lag age above a bound",
	"FlowkerAuditPluginRestarts":     "plugin restarts",
	"FlowkerAuditVerifyFailures":     "verify failures",
	"FlowkerAuditJournalNearFull":    "journal near its size bound",
	"FlowkerAuditSinkDown":           "sink down",
	"FlowkerAuditRequestsRefused":    "refused requests",
	"FlowkerAuditJournalNotWritable": "journal not accepting events",
	"FlowkerAuditSinkConflict":       "a store that disagrees with the journal",
	"FlowkerAuditSinkScrubProblem":   "a stored chain found broken below the delivery cursor",
}

// alertRules parses deployments/prometheus/alerts.yaml with Prometheus' own rule parser
// (strict: unknown fields fail; every expression and annotation template is validated).
func alertRules(t testing.TB) []rulefmt.Rule {
	t.Helper()
	groups, errs := rulefmt.ParseFile(deployFile(t, "prometheus", "alerts.yaml"), false, model.UTF8Validation, promqlParser,
		slog.New(slog.DiscardHandler))
	for _, err := range errs {
		t.Errorf("alerts.yaml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	var out []rulefmt.Rule
	for _, g := range groups.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// githubAnchor is the id GitHub gives a Markdown heading.
func githubAnchor(heading string) string {
	h := strings.ToLower(strings.TrimSpace(heading))
	h = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(h, "")
	return strings.ReplaceAll(h, " ", "-")
}

func docAnchors(t testing.TB) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, line := range strings.Split(string(readFile(t, docPath(t))), "\n") {
		if h, ok := strings.CutPrefix(line, "#"); ok {
			out[githubAnchor(strings.TrimLeft(h, "#"))] = true
		}
	}
	return out
}

// TestAlertRules checks deployments/prometheus/alerts.yaml: it parses with Prometheus' rule
// parser, has every promised alert, each with a severity, a summary, a description, a runbook and
// a runbook_url that points at an existing section of docs/OPERATIONS.md.
func TestAlertRules(t *testing.T) {
	rules := alertRules(t)
	anchors := docAnchors(t)
	have := map[string]bool{}
	for _, r := range rules {
		if r.Alert == "" {
			t.Errorf("recording rule %s in the alerts file", r.Record)
			continue
		}
		if have[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		have[r.Alert] = true
		if s := r.Labels["severity"]; s != "critical" && s != "warning" {
			t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
		}
		for _, a := range []string{"summary", "description", "runbook", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("alert %s has no %s annotation", r.Alert, a)
			}
		}
		u := r.Annotations["runbook_url"]
		_, anchor, _ := strings.Cut(u, "#")
		if !strings.Contains(u, "docs/OPERATIONS.md#") || !anchors[anchor] {
			t.Errorf("alert %s: runbook_url %s does not point at a section of docs/OPERATIONS.md", r.Alert, u)
		}
		if anchor != strings.ToLower(r.Alert) {
			t.Errorf("alert %s: runbook_url anchor %q, want its own section %q", r.Alert, anchor, strings.ToLower(r.Alert))
		}
		if _, err := seriesNames(r.Expr); err != nil {
			t.Errorf("alert %s: %v", r.Alert, err)
		}
	}
	for a, what := range requiredAlerts {
		if !have[a] {
			t.Errorf("no alert %s (%s)", a, what)
		}
	}
}

// grafanaDashboard is the subset of Grafana's dashboard JSON model the dashboard uses, decoded
// with unknown fields rejected (a misspelt "expr" or "targets" fails).
type grafanaDashboard struct {
	UID           string   `json:"uid"`
	Title         string   `json:"title"`
	Description   string   `json:"description"`
	Tags          []string `json:"tags"`
	Timezone      string   `json:"timezone"`
	Editable      bool     `json:"editable"`
	GraphTooltip  int      `json:"graphTooltip"`
	Refresh       string   `json:"refresh"`
	SchemaVersion int      `json:"schemaVersion"`
	Version       int      `json:"version"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Links       []json.RawMessage `json:"links"`
	Annotations json.RawMessage   `json:"annotations"`
	Templating  struct {
		List []grafanaVariable `json:"list"`
	} `json:"templating"`
	Panels []grafanaPanel `json:"panels"`
}

type grafanaVariable struct {
	Name       string             `json:"name"`
	Type       string             `json:"type"`
	Label      string             `json:"label"`
	Datasource *grafanaDatasource `json:"datasource"`
	Query      json.RawMessage    `json:"query"`
	Definition string             `json:"definition"`
	Refresh    int                `json:"refresh"`
	IncludeAll bool               `json:"includeAll"`
	Multi      bool               `json:"multi"`
	AllValue   string             `json:"allValue"`
	Current    json.RawMessage    `json:"current"`
	Hide       int                `json:"hide"`
}

type grafanaDatasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type grafanaPanel struct {
	ID          int                `json:"id"`
	Type        string             `json:"type"`
	Title       string             `json:"title"`
	Description string             `json:"description"`
	Collapsed   bool               `json:"collapsed"`
	Datasource  *grafanaDatasource `json:"datasource"`
	GridPos     struct {
		H int `json:"h"`
		W int `json:"w"`
		X int `json:"x"`
		Y int `json:"y"`
	} `json:"gridPos"`
	Targets []struct {
		RefID        string             `json:"refId"`
		Datasource   *grafanaDatasource `json:"datasource"`
		Expr         string             `json:"expr"`
		LegendFormat string             `json:"legendFormat"`
		Range        bool               `json:"range"`
	} `json:"targets"`
	FieldConfig json.RawMessage   `json:"fieldConfig"`
	Options     json.RawMessage   `json:"options"`
	Panels      []json.RawMessage `json:"panels"`
}

func loadDashboard(t testing.TB) grafanaDashboard {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(readFile(t, deployFile(t, "grafana", "dashboards", "flowker-audit.json"))))
	dec.DisallowUnknownFields()
	var d grafanaDashboard
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("flowker-audit.json: %v", err)
	}
	return d
}

// dashboardQuery is one PromQL query of the dashboard, variables replaced.
type dashboardQuery struct {
	panel, expr string
}

var labelValuesRe = regexp.MustCompile(`^label_values\((.+),\s*([A-Za-z_][A-Za-z0-9_]*)\)$`)

// dashboardQueries returns every PromQL query of the dashboard (panel targets and the metric
// selectors of query variables), with Grafana's variables replaced by values PromQL accepts.
func dashboardQueries(t testing.TB) []dashboardQuery {
	t.Helper()
	d := loadDashboard(t)
	var out []dashboardQuery
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	subst := func(where, expr string) string {
		e := grafanaVars.Replace(expr)
		return grafanaVarRe.ReplaceAllStringFunc(e, func(m string) string {
			name := strings.Trim(m, "${}")
			if !vars[name] {
				t.Errorf("%s: unknown dashboard variable %s", where, m)
			}
			return ".*"
		})
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Errorf("variable %s: query: %v", v.Name, err)
			continue
		}
		m := labelValuesRe.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		out = append(out, dashboardQuery{panel: "variable " + v.Name, expr: subst("variable "+v.Name, m[1])})
	}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, dashboardQuery{panel: p.Title, expr: subst(p.Title, tg.Expr)})
		}
	}
	return out
}

// TestDashboard checks the Grafana dashboard: strict JSON, unique panel ids, a layout inside the
// 24-column grid with no overlap, every panel on the ${datasource} variable with parseable
// queries, and the views operators need (traffic, events by type and result, journal, sink
// lag, search latency).
func TestDashboard(t *testing.T) {
	d := loadDashboard(t)
	if d.UID == "" || d.Title == "" || d.SchemaVersion == 0 {
		t.Errorf("dashboard uid/title/schemaVersion missing")
	}
	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	for _, p := range d.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("panel %q: gridPos %+v outside the 24-column grid", p.Title, g)
		}
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				if other, ok := used[cell{x, y}]; ok {
					t.Errorf("panels %q and %q overlap at %d,%d", other, p.Title, x, y)
				}
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" || p.Datasource.Type != "prometheus" {
			t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("panel %q target %s: datasource %+v", p.Title, tg.RefID, tg.Datasource)
			}
		}
	}
	referenced := map[string]bool{}
	for _, q := range dashboardQueries(t) {
		names, err := seriesNames(q.expr)
		if err != nil {
			t.Errorf("%s: %q: %v", q.panel, q.expr, err)
		}
		for _, n := range names {
			referenced[n] = true
		}
	}
	for what, metric := range map[string]string{
		"traffic":                   "flowker_audit_proxy_requests_total",
		"events by type and result": "flowker_audit_events_total",
		"journal":                   "flowker_audit_journal_bytes",
		"sink lag":                  "flowker_audit_sink_lag_events",
		"sink lag age":              "flowker_audit_sink_oldest_unacked_age_seconds",
		"search latency":            "flowker_audit_search_duration_seconds_bucket",
		"events lost":               "flowker_audit_events_lost_total",
	} {
		if !referenced[metric] {
			t.Errorf("the dashboard has no %s view (%s)", what, metric)
		}
	}
	var ds bool
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" {
			ds = true
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" {
				t.Errorf("datasource variable query %s, want \"prometheus\"", v.Query)
			}
		}
	}
	if !ds {
		t.Error("no datasource variable")
	}
}

// prometheusConfig is the subset of Prometheus' configuration deployments/prometheus uses.
type prometheusConfig struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string          `yaml:"targets"`
			Labels  map[string]string `yaml:"labels"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func loadPrometheusConfig(t testing.TB, path string) prometheusConfig {
	t.Helper()
	var c prometheusConfig
	if err := strictYAML(readFile(t, path), &c); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return c
}

// TestPrometheusConfig checks deployments/prometheus/prometheus.yml: strict decoding, and the job
// name the FlowkerAuditDown alert selects.
func TestPrometheusConfig(t *testing.T) {
	c := loadPrometheusConfig(t, deployFile(t, "prometheus", "prometheus.yml"))
	jobs := map[string]bool{}
	for _, sc := range c.ScrapeConfigs {
		jobs[sc.JobName] = true
	}
	for _, r := range alertRules(t) {
		for _, m := range regexp.MustCompile(`job="([^"]+)"`).FindAllStringSubmatch(r.Expr, -1) {
			if !jobs[m[1]] {
				t.Errorf("alert %s selects job %q, which prometheus.yml does not define", r.Alert, m[1])
			}
		}
	}
}

// Grafana provisioning files (apiVersion 1).
type grafanaProvider struct {
	Name            string `yaml:"name"`
	Folder          string `yaml:"folder"`
	Type            string `yaml:"type"`
	DisableDeletion bool   `yaml:"disableDeletion"`
	AllowUIUpdates  bool   `yaml:"allowUiUpdates"`
	Options         struct {
		Path string `yaml:"path"`
	} `yaml:"options"`
}

type grafanaDatasourceDef struct {
	Name      string `yaml:"name"`
	UID       string `yaml:"uid"`
	Type      string `yaml:"type"`
	Access    string `yaml:"access"`
	URL       string `yaml:"url"`
	IsDefault bool   `yaml:"isDefault"`
	Editable  bool   `yaml:"editable"`
}

func loadGrafanaProviders(t testing.TB) []grafanaProvider {
	t.Helper()
	var f struct {
		APIVersion int               `yaml:"apiVersion"`
		Providers  []grafanaProvider `yaml:"providers"`
	}
	p := deployFile(t, "grafana", "provisioning", "dashboards", "flowker-audit.yaml")
	if err := strictYAML(readFile(t, p), &f); err != nil || f.APIVersion != 1 || len(f.Providers) == 0 {
		t.Fatalf("%s: %v (apiVersion %d, %d providers)", p, err, f.APIVersion, len(f.Providers))
	}
	for _, pr := range f.Providers {
		if pr.Type != "file" || pr.Options.Path == "" {
			t.Errorf("provider %s: type %q path %q", pr.Name, pr.Type, pr.Options.Path)
		}
	}
	return f.Providers
}

func loadGrafanaDatasources(t testing.TB) []grafanaDatasourceDef {
	t.Helper()
	var f struct {
		APIVersion  int                    `yaml:"apiVersion"`
		Datasources []grafanaDatasourceDef `yaml:"datasources"`
	}
	p := deployFile(t, "grafana", "provisioning", "datasources", "prometheus.yaml")
	if err := strictYAML(readFile(t, p), &f); err != nil || f.APIVersion != 1 || len(f.Datasources) == 0 {
		t.Fatalf("%s: %v", p, err)
	}
	for _, d := range f.Datasources {
		if d.Type != "prometheus" || d.URL == "" || d.UID == "" {
			t.Errorf("datasource %s: %+v", d.Name, d)
		}
	}
	return f.Datasources
}

func TestGrafanaProvisioning(t *testing.T) {
	loadGrafanaProviders(t)
	loadGrafanaDatasources(t)
}

// TestOperationsDoc checks that docs/OPERATIONS.md covers what operators look up: the ports and
// probes, every alert with its own section, the log format and the shutdown sequence.
func TestOperationsDoc(t *testing.T) {
	doc := string(readFile(t, docPath(t)))
	anchors := docAnchors(t)
	for _, r := range alertRules(t) {
		if !anchors[strings.ToLower(r.Alert)] {
			t.Errorf("no section for alert %s", r.Alert)
		}
	}
	for _, s := range []string{"4020", "9464", "/healthz", "/readyz", "/metrics", "/debug/pprof", "log.format", "log.level",
		"shutdown_timeout", "journal.max_bytes", "batch_size", "SIGTERM", "event_id"} {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/OPERATIONS.md does not mention %s", s)
		}
	}
	for _, h := range []string{"ports", "probes", "metrics", "alerts", "logs", "shutdown", "capacity"} {
		found := false
		for a := range anchors {
			if strings.Contains(a, h) {
				found = true
			}
		}
		if !found {
			t.Errorf("docs/OPERATIONS.md has no section about %s", h)
		}
	}
}
