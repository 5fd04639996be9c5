package helmchart

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
)

// ciValueFiles are the chart's ci/*-values.yaml files (what chart-testing installs).
func ciValueFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no ci/*-values.yaml: %v", err)
	}
	var out []string
	for _, f := range files {
		out = append(out, filepath.Base(f))
	}
	sort.Strings(out)
	return out
}

// TestChartModes renders every ci/ values file and further value sets, decodes every object
// strictly and checks the invariants of each mode.
func TestChartModes(t *testing.T) {
	type tc struct {
		name      string
		ci        string
		overrides map[string]any
		check     func(t *testing.T, r *rendered)
	}
	var cases []tc
	for _, f := range ciValueFiles(t) {
		cases = append(cases, tc{name: f, ci: f})
	}
	cases = append(cases,
		tc{name: "sidecar, custom ports and job label", ci: "sidecar-values.yaml", overrides: map[string]any{
			"proxyPort": 8080, "adminPort": 9100, "metrics": map[string]any{"jobLabel": "audit-sidecars"},
			"sidecar": map[string]any{"flowker": map[string]any{"port": 5000}}}},
		tc{name: "sidecar, no network policy, digest image", ci: "sidecar-values.yaml", overrides: map[string]any{
			"networkPolicy": map[string]any{"enabled": false},
			"image":         map[string]any{"digest": "sha256:" + strings.Repeat("ab", 32)}},
			check: func(t *testing.T, r *rendered) {
				c := mustContainer(t, r.workload(t), "flowker-audit")
				if !strings.HasSuffix(c.Image, "@sha256:"+strings.Repeat("ab", 32)) {
					t.Errorf("image %s does not use the digest", c.Image)
				}
			}},
		tc{name: "gateway, Flowker in another namespace", ci: "gateway-values.yaml", overrides: map[string]any{
			"gateway": map[string]any{"flowker": map[string]any{"namespace": "flowker-core"}}}},
		tc{name: "gateway, one replica, long shutdown", ci: "gateway-values.yaml", overrides: map[string]any{
			"replicaCount": 1, "shutdownTimeoutSeconds": 120}},
		tc{name: "sidecar, service account token for the watcher", ci: "sidecar-values.yaml", overrides: map[string]any{
			"watcher": map[string]any{"serviceAccountToken": map[string]any{"enabled": true}}},
			check: func(t *testing.T, r *rendered) {
				w := r.workload(t)
				ok := false
				for _, v := range w.pod.Spec.Volumes {
					ok = ok || (v.Projected != nil && len(v.Projected.Sources) == 1 && v.Projected.Sources[0].ServiceAccountToken != nil)
				}
				if !ok || !strings.Contains(r.configMaps["audit-flowker-audit-config"].Data["config.yaml"], "token_file: /var/run/secrets/flowker-audit/token") {
					t.Error("no projected token volume or watcher.token_file")
				}
			}},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := render(t, valuesOf(t, c.ci, c.overrides))
			t.Logf("%s mode: %s", r.str("mode"), r.kinds())
			checkInvariants(t, r)
			if c.check != nil {
				c.check(t, r)
			}
		})
	}
}

// TestChartRefusesUnsafeValues: value sets that would deploy something broken or unsafe fail
// the render with what to do.
func TestChartRefusesUnsafeValues(t *testing.T) {
	for _, c := range []struct {
		name      string
		ci        string
		overrides map[string]any
		want      string
	}{
		{"no Secret", "", nil, "secrets.existingSecret is required"},
		{"Deployment without a shared query sink", "sidecar-values.yaml", map[string]any{"sidecar": map[string]any{"workload": "Deployment"}}, "needs a shared query sink"},
		{"unknown mode (values.schema.json)", "sidecar-values.yaml", map[string]any{"mode": "daemonset"}, "/mode"},
		{"a misspelt value (values.schema.json)", "sidecar-values.yaml", map[string]any{"replicas": 3}, "additional properties 'replicas' not allowed"},
		{"a wrong type (values.schema.json)", "sidecar-values.yaml", map[string]any{"persistence": map[string]any{"size": 10}}, "/persistence/size"},
		{"ClickHouse without its password Secret", "sidecar-values.yaml", map[string]any{"clickhouse": map[string]any{"enabled": true}}, "clickhouse.passwordSecret.name is required"},
		{"OAuth2 without a token URL", "gateway-values.yaml", map[string]any{"watcher": map[string]any{"oauth2": map[string]any{"enabled": true}}}, "watcher.oauth2 needs"},
		{"Flowker's secrets without a Secret", "", map[string]any{"secrets": map[string]any{"existingSecret": "x"}}, "sidecar.flowker.existingSecret is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := tryRender(t, valuesOf(t, c.ci, c.overrides))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("render error %v, want one saying %q", err, c.want)
			}
		})
	}
}

// TestChartLint runs Helm's linter (the SDK's, as `helm lint` does) with each ci/ values file.
func TestChartLint(t *testing.T) {
	for _, f := range ciValueFiles(t) {
		t.Run(f, func(t *testing.T) {
			vals, err := chartutil.ReadValuesFile(filepath.Join(chartDir(t), "ci", f))
			if err != nil {
				t.Fatal(err)
			}
			l := lint.AllWithKubeVersion(chartDir(t), vals.AsMap(), namespace, &chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"})
			for _, m := range l.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestChartAlertsAreTheRepositorys: the chart's copy of the alert rules is byte-identical to
// deployments/prometheus/alerts.yaml (Helm cannot read files outside the chart).
func TestChartAlertsAreTheRepositorys(t *testing.T) {
	a, err := os.ReadFile(filepath.Join(moduleRoot(t), "deployments", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(chartDir(t), "files", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) {
		t.Error("deployments/helm/flowker-audit/files/alerts.yaml differs from deployments/prometheus/alerts.yaml: cp deployments/prometheus/alerts.yaml deployments/helm/flowker-audit/files/")
	}
}

// TestChartDocumentsEveryCIFile: the chart's README names every ci/ values file.
func TestChartDocumentsEveryCIFile(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range ciValueFiles(t) {
		if !strings.Contains(string(readme), "ci/"+f) {
			t.Errorf("README.md does not describe ci/%s", f)
		}
	}
}
