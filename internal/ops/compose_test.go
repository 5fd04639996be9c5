package ops

import (
	"net/url"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/config"
)

// composeFile is the subset of the Compose specification deployments/compose uses. Decoding is
// strict: a key this struct does not know (a typo, or a feature nobody reviewed) fails.
type composeFile struct {
	Name     string                     `yaml:"name"`
	Services map[string]composeService  `yaml:"services"`
	Volumes  map[string]*composeVolume  `yaml:"volumes"`
	Networks map[string]*composeNetwork `yaml:"networks"`
}

type composeVolume struct {
	Driver string `yaml:"driver"`
}

type composeNetwork struct {
	Driver string `yaml:"driver"`
}

type composeService struct {
	Image           string                      `yaml:"image"`
	Build           *composeBuild               `yaml:"build"`
	Command         []string                    `yaml:"command"`
	Environment     map[string]string           `yaml:"environment"`
	Ports           []string                    `yaml:"ports"`
	Expose          []string                    `yaml:"expose"`
	Volumes         []string                    `yaml:"volumes"`
	ReadOnly        bool                        `yaml:"read_only"`
	Tmpfs           []string                    `yaml:"tmpfs"`
	DependsOn       map[string]composeDependsOn `yaml:"depends_on"`
	Healthcheck     *composeHealthcheck         `yaml:"healthcheck"`
	Restart         string                      `yaml:"restart"`
	Ulimits         map[string]composeUlimit    `yaml:"ulimits"`
	StopGracePeriod string                      `yaml:"stop_grace_period"`
}

type composeBuild struct {
	Context    string `yaml:"context"`
	Dockerfile string `yaml:"dockerfile"`
}

type composeDependsOn struct {
	Condition string `yaml:"condition"`
}

type composeHealthcheck struct {
	Test        []string `yaml:"test"`
	Interval    string   `yaml:"interval"`
	Timeout     string   `yaml:"timeout"`
	Retries     int      `yaml:"retries"`
	StartPeriod string   `yaml:"start_period"`
}

type composeUlimit struct {
	Soft int `yaml:"soft"`
	Hard int `yaml:"hard"`
}

var composeVarRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:?-([^}]*))?\}`)

// composeEnv resolves ${VAR:-default} to its default, as compose does when VAR is unset.
func composeEnv(t *testing.T, env map[string]string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range env {
		out[k] = composeVarRe.ReplaceAllStringFunc(v, func(m string) string {
			sub := composeVarRe.FindStringSubmatch(m)
			if sub[2] == "" {
				t.Errorf("%s: ${%s} has no default: the file would not run as it is", k, sub[1])
			}
			return sub[3]
		})
	}
	return out
}

// mount is one volumes: entry.
type mount struct {
	src, dst string
	bind     bool
	ro       bool
}

func parseMount(s string) mount {
	parts := strings.Split(s, ":")
	m := mount{src: parts[0]}
	if len(parts) > 1 {
		m.dst = parts[1]
	}
	m.ro = len(parts) > 2 && parts[2] == "ro"
	m.bind = strings.HasPrefix(m.src, ".") || strings.HasPrefix(m.src, "/")
	return m
}

// publishedContainerPorts returns the container ports of a ports: list ("[ip:]host:container").
func publishedContainerPorts(t *testing.T, ports []string) map[int]bool {
	t.Helper()
	out := map[int]bool{}
	for _, p := range ports {
		f := strings.Split(p, ":")
		n, err := strconv.Atoi(strings.TrimSuffix(f[len(f)-1], "/tcp"))
		if err != nil {
			t.Errorf("port %q: %v", p, err)
		}
		out[n] = true
	}
	return out
}

// TestCompose decodes deployments/compose/compose.yaml strictly and checks it against the files
// and the configuration it uses: every mounted file and the build context exist, named volumes
// are declared, dependencies exist (and have health checks where waited for), Flowker is the
// published image and not reachable around the sidecar, the sidecar's configuration parses with
// its environment (FLOWKER_AUDIT_* naming real keys) and its ports, upstream and sinks agree with
// the other services, and Prometheus and Grafana get the files they are configured with.
func TestCompose(t *testing.T) {
	dir := deployFile(t, "compose")
	var c composeFile
	if err := strictYAML(readFile(t, filepath.Join(dir, "compose.yaml")), &c); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, s := range []string{"mongodb", "postgres", "flowker", "flowker-audit", "clickhouse", "prometheus", "grafana"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("no service %s", s)
		}
	}
	// Mounts: hostPath -> container path, per service.
	mounts := map[string]map[string]string{}
	for name, s := range c.Services {
		mounts[name] = map[string]string{}
		if s.Image == "" && s.Build == nil {
			t.Errorf("service %s has neither image nor build", name)
		}
		if s.Image != "" && s.Build == nil && !regexp.MustCompile(`:[^/:]+$`).MatchString(s.Image) {
			t.Errorf("service %s: image %s has no tag", name, s.Image)
		}
		if strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("service %s: pin a version, not latest", name)
		}
		for _, v := range s.Volumes {
			m := parseMount(v)
			if m.dst == "" || !path.IsAbs(m.dst) {
				t.Errorf("service %s: volume %q has no absolute container path", name, v)
			}
			if m.bind {
				host := filepath.Join(dir, m.src)
				if !fileExists(host) {
					t.Errorf("service %s mounts %s, which does not exist (%s)", name, m.src, host)
				}
				if !strings.HasPrefix(host, deployFile(t)+string(filepath.Separator)) {
					t.Errorf("service %s mounts %s, which is not under deployments/", name, host)
				}
				mounts[name][m.dst] = host
			} else if _, ok := c.Volumes[m.src]; !ok {
				t.Errorf("service %s: named volume %s is not declared under volumes:", name, m.src)
			}
		}
		for dep, d := range s.DependsOn {
			target, ok := c.Services[dep]
			switch {
			case !ok:
				t.Errorf("service %s depends on %s, which does not exist", name, dep)
			case d.Condition == "service_healthy" && target.Healthcheck == nil:
				t.Errorf("service %s waits for %s to be healthy, which has no healthcheck", name, dep)
			case d.Condition != "service_started" && d.Condition != "service_healthy" && d.Condition != "service_completed_successfully":
				t.Errorf("service %s: depends_on %s: condition %q", name, dep, d.Condition)
			}
		}
		if s.Build != nil {
			ctx := filepath.Join(dir, s.Build.Context)
			if !fileExists(filepath.Join(ctx, "go.mod")) {
				t.Errorf("service %s: build context %s is not the repository root", name, ctx)
			}
			if !fileExists(filepath.Join(ctx, s.Build.Dockerfile)) {
				t.Errorf("service %s: Dockerfile %s does not exist", name, s.Build.Dockerfile)
			}
		}
	}

	// Flowker: the published image, reachable only on the compose network.
	fl := c.Services["flowker"]
	if !strings.HasPrefix(fl.Image, "ghcr.io/lerianstudio/flowker:") {
		t.Errorf("flowker image %s: want Flowker's published image ghcr.io/lerianstudio/flowker", fl.Image)
	}
	if len(fl.Ports) > 0 {
		t.Errorf("flowker publishes %v: its port must be reachable only through the sidecar", fl.Ports)
	}
	flEnv := composeEnv(t, fl.Environment)
	flPort := portOf(t, flEnv["SERVER_ADDRESS"])
	if flEnv["AUDIT_DB_HOST"] == "" || flEnv["MONGO_URI"] == "" {
		t.Error("flowker needs AUDIT_DB_HOST and MONGO_URI")
	}
	if u, err := url.Parse(flEnv["MONGO_URI"]); err != nil || u.Query().Get("replicaSet") == "" {
		t.Errorf("MONGO_URI %q does not name the replica set", flEnv["MONGO_URI"])
	}
	if !strings.Contains(strings.Join(c.Services["mongodb"].Command, " "), "--replSet") {
		t.Error("mongodb does not run as a replica set")
	}
	if c.Services["postgres"].Image != "postgres:16-alpine" {
		t.Errorf("postgres image %s, want postgres:16-alpine (Flowker's own compose)", c.Services["postgres"].Image)
	}
	if !strings.HasPrefix(c.Services["clickhouse"].Image, "clickhouse/clickhouse-server:") {
		t.Errorf("clickhouse image %s", c.Services["clickhouse"].Image)
	}

	// The sidecar: its configuration, with its environment.
	fa := c.Services["flowker-audit"]
	if len(fa.Command) != 3 || fa.Command[0] != "serve" || fa.Command[1] != "--config" {
		t.Fatalf("flowker-audit command %v: want serve --config FILE", fa.Command)
	}
	cfgHost, ok := mounts["flowker-audit"][fa.Command[2]]
	if !ok {
		t.Fatalf("flowker-audit's --config %s is not a mounted file", fa.Command[2])
	}
	// A variable set from the host's environment (or .env) has the name README and config.yaml
	// teach: FLOWKER_AUDIT_AUTH_API_KEYS: ${FLOWKER_AUDIT_AUTH_API_KEYS:-...}, not a shorter alias
	// an .env written from the README would miss.
	for k, v := range fa.Environment {
		for _, m := range composeVarRe.FindAllStringSubmatch(v, -1) {
			if strings.HasPrefix(m[1], config.EnvPrefix) && m[1] != k {
				t.Errorf("flowker-audit: %s is read from ${%s}: name the host variable %s", k, m[1], k)
			}
		}
	}
	if hc := fa.Healthcheck; hc == nil || len(hc.Test) < 3 || hc.Test[0] != "CMD" || hc.Test[2] != "healthcheck" {
		t.Errorf("flowker-audit has no `flowker-audit healthcheck` health check: %+v", fa.Healthcheck)
	} else if i := slices.Index(hc.Test, "--config"); i < 0 || i+1 >= len(hc.Test) || hc.Test[i+1] != fa.Command[2] {
		t.Errorf("the health check %v does not read the configuration the sidecar runs with (%s)", hc.Test, fa.Command[2])
	}
	faEnv := composeEnv(t, fa.Environment)
	checkEnvNames(t, "compose flowker-audit", faEnv)
	cfg := parseDeployedConfig(t, "compose's flowker-audit configuration", readFile(t, cfgHost), faEnv)
	if got, want := publishedContainerPorts(t, fa.Ports), []int{portOf(t, cfg.Listen.Addr), portOf(t, cfg.Admin.Addr)}; len(got) != 2 || !got[want[0]] || !got[want[1]] {
		t.Errorf("flowker-audit publishes container ports %v, its configuration listens on %v", got, want)
	}
	up, err := url.Parse(cfg.Upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	if up.Hostname() != "flowker" || up.Port() != strconv.Itoa(flPort) {
		t.Errorf("upstream.url %s does not point at the flowker service on its SERVER_ADDRESS port %d", cfg.Upstream.URL, flPort)
	}
	exposed := false
	for _, e := range fl.Expose {
		exposed = exposed || e == strconv.Itoa(flPort)
	}
	if !exposed {
		t.Errorf("flowker does not expose %d on the compose network", flPort)
	}
	if cfg.Watcher.APIKey != flEnv["API_KEY"] {
		t.Errorf("the watcher's key (%q) is not Flowker's API_KEY (%q)", cfg.Watcher.APIKey, flEnv["API_KEY"])
	}
	dataMounted := false
	for _, v := range fa.Volumes {
		if m := parseMount(v); !m.bind && m.dst == cfg.DataDir {
			dataMounted = true
		}
	}
	if !dataMounted {
		t.Errorf("data_dir %s is not on a named volume", cfg.DataDir)
	}
	if fa.ReadOnly && !contains(fa.Tmpfs, "/tmp") {
		t.Error("a read-only flowker-audit needs a tmpfs on /tmp (plugin sockets)")
	}
	chEnv := composeEnv(t, c.Services["clickhouse"].Environment)
	for _, s := range cfg.Sinks {
		switch s.Plugin {
		case "sqlite":
			if p, _ := s.Config["path"].(string); !strings.HasPrefix(p, cfg.DataDir+"/") {
				t.Errorf("sink %s: %s is not on the data volume %s", s.Name, p, cfg.DataDir)
			}
		case "clickhouse":
			addrs, _ := s.Config["addr"].([]any)
			if len(addrs) != 1 || addrs[0] != "clickhouse:9000" {
				t.Errorf("sink %s: addr %v, want the clickhouse service's native port", s.Name, s.Config["addr"])
			}
			if s.Config["user"] != chEnv["CLICKHOUSE_USER"] || s.Config["database"] != chEnv["CLICKHOUSE_DB"] {
				t.Errorf("sink %s: user/database %v/%v, ClickHouse creates %s/%s", s.Name, s.Config["user"], s.Config["database"],
					chEnv["CLICKHOUSE_USER"], chEnv["CLICKHOUSE_DB"])
			}
			pe, _ := s.Config["password_env"].(string)
			if faEnv[pe] == "" || faEnv[pe] != chEnv["CLICKHOUSE_PASSWORD"] {
				t.Errorf("sink %s: password_env %s is not set to ClickHouse's password in flowker-audit's environment", s.Name, pe)
			}
		}
	}

	// Prometheus scrapes the sidecar's admin port and loads the alert rules it mounts.
	prom := c.Services["prometheus"]
	var promCfgPath string
	for _, a := range prom.Command {
		if v, ok := strings.CutPrefix(a, "--config.file="); ok {
			promCfgPath = v
		}
	}
	promHost, ok := mounts["prometheus"][promCfgPath]
	if !ok {
		t.Fatalf("prometheus --config.file=%s is not a mounted file", promCfgPath)
	}
	pc := loadPrometheusConfig(t, promHost)
	for _, rf := range pc.RuleFiles {
		host, ok := mounts["prometheus"][rf]
		if !ok {
			t.Errorf("prometheus rule file %s is not mounted", rf)
		} else if filepath.Base(host) != "alerts.yaml" || filepath.Dir(host) != deployFile(t, "prometheus") {
			t.Errorf("prometheus rule file %s is %s, not deployments/prometheus/alerts.yaml", rf, host)
		}
	}
	target := "flowker-audit:" + strconv.Itoa(portOf(t, cfg.Admin.Addr))
	scraped := false
	for _, sc := range pc.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			if contains(st.Targets, target) && (sc.MetricsPath == "" || sc.MetricsPath == "/metrics") {
				scraped = true
			}
		}
	}
	if !scraped {
		t.Errorf("prometheus does not scrape %s/metrics", target)
	}

	// Grafana: provisioning and the dashboards directory its provider reads.
	prov, ok := mounts["grafana"]["/etc/grafana/provisioning"]
	if !ok || prov != deployFile(t, "grafana", "provisioning") {
		t.Errorf("grafana does not mount deployments/grafana/provisioning at /etc/grafana/provisioning")
	}
	for _, p := range loadGrafanaProviders(t) {
		host, ok := mounts["grafana"][p.Options.Path]
		if !ok || host != deployFile(t, "grafana", "dashboards") {
			t.Errorf("grafana dashboard provider %s reads %s, which is not deployments/grafana/dashboards", p.Name, p.Options.Path)
		}
	}
	for _, ds := range loadGrafanaDatasources(t) {
		if u, err := url.Parse(ds.URL); err != nil || u.Hostname() != "prometheus" {
			t.Errorf("grafana datasource %s: url %s is not the prometheus service", ds.Name, ds.URL)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
