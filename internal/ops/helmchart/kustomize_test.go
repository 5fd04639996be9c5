package helmchart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chartutil"
)

const generatedHeader = `# GENERATED from the Helm chart deployments/helm/flowker-audit with deployments/kubernetes/values.yaml
# (release "flowker"; kustomization.yaml sets the namespace). Do not edit: change values.yaml or
# the chart, then run
#   go test ./internal/ops/helmchart -run Kustomize -update
`

// TestKustomizeIsTheChart: deployments/kubernetes/flowker-audit.yaml is exactly the chart rendered
// with deployments/kubernetes/values.yaml, so the plain manifests never drift from the chart
// (-update rewrites it). The render passes the same invariants as the chart's own value sets.
func TestKustomizeIsTheChart(t *testing.T) {
	dir := filepath.Join(moduleRoot(t), "deployments", "kubernetes")
	v, err := chartutil.ReadValuesFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r := renderAs(t, "flowker", v.AsMap())
	checkInvariants(t, r)
	want := generatedHeader + strings.TrimLeft(r.manifest, "\n")
	path := filepath.Join(dir, "flowker-audit.yaml")
	if *update {
		if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("%s is not the chart's render with values.yaml: run go test ./internal/ops/helmchart -run Kustomize -update", path)
	}
}
