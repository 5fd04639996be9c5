package helmchart

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite deployments/kubernetes/flowker-audit.yaml from the chart")

const (
	releaseName = "audit"
	namespace   = "flowker"
)

// moduleRoot is the repository root (this package is internal/ops/helmchart).
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root: %v", err)
	}
	return root
}

func chartDir(t *testing.T) string {
	return filepath.Join(moduleRoot(t), "deployments", "helm", "flowker-audit")
}

func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatalf("loading the chart: %v", err)
	}
	return ch
}

// valuesOf reads the chart's ci/NAME file (when name is not empty) and merges overrides into it.
func valuesOf(t *testing.T, ciFile string, overrides map[string]any) map[string]any {
	t.Helper()
	vals := map[string]any{}
	if ciFile != "" {
		v, err := chartutil.ReadValuesFile(filepath.Join(chartDir(t), "ci", ciFile))
		if err != nil {
			t.Fatal(err)
		}
		vals = v.AsMap()
	}
	return chartutil.CoalesceTables(deepCopy(overrides), vals)
}

func deepCopy(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		if sub, ok := v.(map[string]any); ok {
			out[k] = deepCopy(sub)
		} else {
			out[k] = v
		}
	}
	return out
}

// rendered is a chart render decoded into API types.
type rendered struct {
	values       map[string]any // the values as the chart saw them (defaults coalesced)
	notes        string
	docs         int
	configMaps   map[string]*corev1.ConfigMap
	services     map[string]*corev1.Service
	accounts     map[string]*corev1.ServiceAccount
	statefulSets map[string]*appsv1.StatefulSet
	deployments  map[string]*appsv1.Deployment
	pdbs         map[string]*policyv1.PodDisruptionBudget
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	policies     map[string]*networkingv1.NetworkPolicy
	podMonitors  map[string]*monitoringv1.PodMonitor
	svcMonitors  map[string]*monitoringv1.ServiceMonitor
	rules        map[string]*monitoringv1.PrometheusRule
	manifest     string
}

// render installs the chart client-only (as `helm template` does: no cluster) with vals, and
// decodes every object strictly: an unknown or misspelt field, a wrong type or a duplicate key
// fails the test.
func render(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := tryRender(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func tryRender(t *testing.T, vals map[string]any) (*rendered, error) {
	t.Helper()
	return tryRenderAs(t, releaseName, vals)
}

// renderAs is render with another release name.
func renderAs(t *testing.T, release string, vals map[string]any) *rendered {
	t.Helper()
	r, err := tryRenderAs(t, release, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

func tryRenderAs(t *testing.T, release string, vals map[string]any) (*rendered, error) {
	t.Helper()
	ch := loadChart(t)
	// What `helm template` does, without pkg/action (which would pull the Kubernetes client,
	// kubectl's libraries and the OCI registry client into this package's compile): values
	// coalesced and validated against values.schema.json, kubeVersion checked, templates
	// rendered, manifests sorted in install order, NOTES.txt rendered apart.
	caps := chartutil.DefaultCapabilities.Copy()
	caps.KubeVersion = chartutil.KubeVersion{Version: "v1.31.0", Major: "1", Minor: "31"}
	caps.APIVersions = append(caps.APIVersions, "monitoring.coreos.com/v1")
	if !chartutil.IsCompatibleRange(ch.Metadata.KubeVersion, caps.KubeVersion.String()) {
		return nil, fmt.Errorf("chart requires kubeVersion %s, incompatible with %s", ch.Metadata.KubeVersion, caps.KubeVersion.String())
	}
	if err := chartutil.ProcessDependenciesWithMerge(ch, deepCopy(vals)); err != nil {
		return nil, err
	}
	rv, err := chartutil.ToRenderValues(ch, deepCopy(vals), chartutil.ReleaseOptions{Name: release, Namespace: namespace, Revision: 1, IsInstall: true}, caps)
	if err != nil {
		return nil, err
	}
	files, err := engine.Render(ch, rv)
	if err != nil {
		return nil, err
	}
	notes := ""
	for name, content := range files {
		if strings.HasSuffix(name, "NOTES.txt") {
			notes = content
			delete(files, name)
		}
	}
	_, manifests, err := releaseutil.SortManifests(files, caps.APIVersions, releaseutil.InstallOrder)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Name, m.Content)
	}
	full, err := chartutil.CoalesceValues(ch, deepCopy(vals))
	if err != nil {
		return nil, err
	}
	r := &rendered{values: full.AsMap(), notes: notes, manifest: b.String(),
		configMaps: map[string]*corev1.ConfigMap{}, services: map[string]*corev1.Service{},
		accounts: map[string]*corev1.ServiceAccount{}, statefulSets: map[string]*appsv1.StatefulSet{},
		deployments: map[string]*appsv1.Deployment{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, policies: map[string]*networkingv1.NetworkPolicy{},
		podMonitors: map[string]*monitoringv1.PodMonitor{}, svcMonitors: map[string]*monitoringv1.ServiceMonitor{},
		rules: map[string]*monitoringv1.PrometheusRule{}}
	for _, doc := range splitManifest(r.manifest) {
		if err := r.decode(doc); err != nil {
			t.Errorf("%v\n%s", err, doc)
		}
	}
	return r, nil
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

func splitManifest(m string) []string {
	var out []string
	for _, d := range docSep.Split(m, -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, d)
		}
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

func (r *rendered) decode(doc string) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
		return err
	}
	r.docs++
	var obj interface{ GetName() string }
	var store func()
	switch tm.APIVersion + " " + tm.Kind {
	case "v1 ConfigMap":
		v := &corev1.ConfigMap{}
		obj, store = v, func() { r.configMaps[v.Name] = v }
	case "v1 Service":
		v := &corev1.Service{}
		obj, store = v, func() { r.services[v.Name] = v }
	case "v1 ServiceAccount":
		v := &corev1.ServiceAccount{}
		obj, store = v, func() { r.accounts[v.Name] = v }
	case "apps/v1 StatefulSet":
		v := &appsv1.StatefulSet{}
		obj, store = v, func() { r.statefulSets[v.Name] = v }
	case "apps/v1 Deployment":
		v := &appsv1.Deployment{}
		obj, store = v, func() { r.deployments[v.Name] = v }
	case "policy/v1 PodDisruptionBudget":
		v := &policyv1.PodDisruptionBudget{}
		obj, store = v, func() { r.pdbs[v.Name] = v }
	case "autoscaling/v2 HorizontalPodAutoscaler":
		v := &autoscalingv2.HorizontalPodAutoscaler{}
		obj, store = v, func() { r.hpas[v.Name] = v }
	case "networking.k8s.io/v1 NetworkPolicy":
		v := &networkingv1.NetworkPolicy{}
		obj, store = v, func() { r.policies[v.Name] = v }
	case "monitoring.coreos.com/v1 PodMonitor":
		v := &monitoringv1.PodMonitor{}
		obj, store = v, func() { r.podMonitors[v.Name] = v }
	case "monitoring.coreos.com/v1 ServiceMonitor":
		v := &monitoringv1.ServiceMonitor{}
		obj, store = v, func() { r.svcMonitors[v.Name] = v }
	case "monitoring.coreos.com/v1 PrometheusRule":
		v := &monitoringv1.PrometheusRule{}
		obj, store = v, func() { r.rules[v.Name] = v }
	default:
		return fmt.Errorf("unexpected object %s %s (add it to the decoder and its checks)", tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		return fmt.Errorf("%s: %w", tm.Kind, err)
	}
	for _, e := range validation.IsDNS1123Subdomain(obj.GetName()) {
		return fmt.Errorf("%s %q: %s", tm.Kind, obj.GetName(), e)
	}
	store()
	return nil
}

// kinds lists what was rendered, for messages.
func (r *rendered) kinds() string {
	var out []string
	add := func(kind string, n int) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, kind))
		}
	}
	add("ConfigMap", len(r.configMaps))
	add("Service", len(r.services))
	add("StatefulSet", len(r.statefulSets))
	add("Deployment", len(r.deployments))
	add("PDB", len(r.pdbs))
	add("HPA", len(r.hpas))
	add("NetworkPolicy", len(r.policies))
	add("PodMonitor", len(r.podMonitors))
	add("ServiceMonitor", len(r.svcMonitors))
	add("PrometheusRule", len(r.rules))
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// val reads a dotted path of the coalesced values.
func (r *rendered) val(path string) any {
	var cur any = r.values
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (r *rendered) str(path string) string {
	s, _ := r.val(path).(string)
	return s
}

func (r *rendered) bool(path string) bool {
	b, _ := r.val(path).(bool)
	return b
}

func (r *rendered) int(path string) int {
	switch v := r.val(path).(type) {
	case int:
		return v
	case int64:
		return int(v)
	case float64:
		return int(v)
	}
	return 0
}
