package helmchart

import (
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/rulefmt"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/plugins"
)

// workload is the one StatefulSet or Deployment the chart renders.
type workload struct {
	kind     string
	name     string
	replicas *int32
	selector *metav1.LabelSelector
	pod      corev1.PodTemplateSpec
}

func (r *rendered) workload(t *testing.T) workload {
	t.Helper()
	if n := len(r.statefulSets) + len(r.deployments); n != 1 {
		t.Fatalf("%d workloads rendered (%s), want 1", n, r.kinds())
	}
	for _, s := range r.statefulSets {
		return workload{kind: "StatefulSet", name: s.Name, replicas: s.Spec.Replicas, selector: s.Spec.Selector, pod: s.Spec.Template}
	}
	for _, d := range r.deployments {
		return workload{kind: "Deployment", name: d.Name, replicas: d.Spec.Replicas, selector: d.Spec.Selector, pod: d.Spec.Template}
	}
	return workload{}
}

func (w workload) container(name string) (corev1.Container, bool) {
	for _, c := range w.pod.Spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return corev1.Container{}, false
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// probePort resolves a probe's port as the kubelet does: a name among the container's own ports.
func probePort(t *testing.T, c corev1.Container, what string, p *corev1.Probe) (int32, string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("container %s: no HTTP %s probe", c.Name, what)
		return 0, ""
	}
	if p.HTTPGet.Port.Type == intstr.String {
		n, ok := containerPort(c, p.HTTPGet.Port.StrVal)
		if !ok {
			t.Errorf("container %s: %s probe port %q is not one of the container's own ports", c.Name, what, p.HTTPGet.Port.StrVal)
		}
		return n, p.HTTPGet.Path
	}
	return p.HTTPGet.Port.IntVal, p.HTTPGet.Path
}

func portOf(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return int32(n)
}

func selects(t *testing.T, sel *metav1.LabelSelector, podLabels map[string]string) bool {
	t.Helper()
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return false
	}
	return !s.Empty() && s.Matches(labels.Set(podLabels))
}

// secretLooking names variables that must never carry a literal value.
var secretLooking = regexp.MustCompile(`(?i)(KEY|PASSWORD|SECRET|TOKEN|CREDENTIAL|MONGO_URI|DSN)`)

// notSecret are names that match secretLooking but hold switches or paths.
var notSecret = regexp.MustCompile(`(_ENABLED|_FILE|_CONFIG)$`)

// The secret configuration keys: none may be in the ConfigMap.
var secretConfigKeys = regexp.MustCompile(`(?m)^\s*(api_keys|api_key|fingerprint_key|cursor_key|authorization|hmac_secret|client_secret|password):`)

// sidecarEnv checks the flowker-audit container's environment (every secret from a Secret,
// nothing else than values) and resolves it with placeholder secret values.
func sidecarEnv(t *testing.T, c corev1.Container, secretNames map[string]bool) map[string]string {
	t.Helper()
	env := map[string]string{}
	if len(c.EnvFrom) > 0 {
		t.Errorf("container %s: envFrom: name every variable so that it can be checked", c.Name)
	}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			if secretLooking.MatchString(e.Name) && !notSecret.MatchString(e.Name) {
				t.Errorf("container %s: %s has a literal value: secrets come from Secrets", c.Name, e.Name)
			}
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if !secretNames[ref.Name] {
				t.Errorf("container %s: %s refers to Secret %q, which no value names", c.Name, e.Name, ref.Name)
			}
			env[e.Name] = "secret-" + ref.Name + "-" + ref.Key + "-0123456789abcdef0123456789abcdef"
		default:
			t.Errorf("container %s: %s: only values and secretKeyRef are expected", c.Name, e.Name)
		}
	}
	return env
}

// checkInvariants checks one render against what the chart promises.
func checkInvariants(t *testing.T, r *rendered) {
	t.Helper()
	w := r.workload(t)
	mode := r.str("mode")
	podLabels := w.pod.Labels
	if !selects(t, w.selector, podLabels) {
		t.Errorf("%s %s: selector %v does not select its own pods %v", w.kind, w.name, w.selector, podLabels)
	}
	wantKind := "StatefulSet"
	if mode == "sidecar" {
		wantKind = r.str("sidecar.workload")
	}
	if w.kind != wantKind {
		t.Errorf("mode %s: workload is a %s, want %s", mode, w.kind, wantKind)
	}

	// The configuration the sidecar runs with: the mounted ConfigMap's config.yaml with the
	// container's environment, through config.Parse and the bundled plugins' validation.
	audit, ok := w.container("flowker-audit")
	if !ok {
		t.Fatal("no container flowker-audit")
	}
	secretNames := map[string]bool{r.str("secrets.existingSecret"): true}
	if r.bool("clickhouse.enabled") {
		secretNames[r.str("clickhouse.passwordSecret.name")] = true
	}
	env := sidecarEnv(t, audit, secretNames)
	args := append(append([]string{}, audit.Command...), audit.Args...)
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" || env["FLOWKER_AUDIT_CONFIG"] != args[2] {
		t.Fatalf("flowker-audit args %v, FLOWKER_AUDIT_CONFIG %q: want serve --config FILE, the same FILE", args, env["FLOWKER_AUDIT_CONFIG"])
	}
	raw := mountedConfig(t, r, w, audit, args[2])
	if m := secretConfigKeys.FindString(raw); m != "" {
		t.Errorf("the ConfigMap holds a secret key (%s): secrets come from Secrets", strings.TrimSpace(m))
	}
	for k, v := range env {
		if !strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, v) // password_env and friends, read by the plugins' validation
		}
	}
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Parse([]byte(raw), config.Options{Lookup: func(k string) (string, bool) { v, ok := env[k]; return v, ok },
		Environ: environ, Plugins: plugins.Catalog{}})
	if err != nil {
		t.Fatalf("the rendered config.yaml does not pass config.Parse with the container's environment: %v\n%s", err, raw)
	}
	if len(cfg.Auth.APIKeys) == 0 || cfg.Identity.FingerprintKey == "" || cfg.Auth.CursorKey == "" {
		t.Error("audit API keys, fingerprint key and cursor key must all come from the Secret (the same on every replica)")
	}
	if cfg.Chain.ID != "" {
		t.Errorf("chain.id %q is set for every replica: each replica must keep its own chain", cfg.Chain.ID)
	}

	// Ports and probes: the container's named ports are the configuration's listeners; the
	// sidecar's probes are /healthz and /readyz on the admin port.
	proxyPort, admin := portOf(t, cfg.Listen.Addr), portOf(t, cfg.Admin.Addr)
	if p, ok := containerPort(audit, "proxy"); !ok || p != proxyPort {
		t.Errorf("container port proxy = %d, listen.addr %s", p, cfg.Listen.Addr)
	}
	if p, ok := containerPort(audit, "admin"); !ok || p != admin {
		t.Errorf("container port admin = %d, admin.addr %s", p, cfg.Admin.Addr)
	}
	if h, _, _ := net.SplitHostPort(cfg.Admin.Addr); h == "127.0.0.1" || h == "localhost" {
		t.Errorf("admin.addr %s: the kubelet and Prometheus cannot reach a loopback listener", cfg.Admin.Addr)
	}
	for _, pr := range []struct {
		what, path string
		p          *corev1.Probe
	}{{"startup", "/healthz", audit.StartupProbe}, {"liveness", "/healthz", audit.LivenessProbe}, {"readiness", "/readyz", audit.ReadinessProbe}} {
		if port, p := probePort(t, audit, pr.what, pr.p); port != admin || p != pr.path {
			t.Errorf("flowker-audit %s probe: %s on %d, want %s on the admin port %d", pr.what, p, port, pr.path, admin)
		}
	}

	// Shutdown: the grace period covers the preStop pause and shutdown_timeout.
	grace := int64(30)
	if w.pod.Spec.TerminationGracePeriodSeconds != nil {
		grace = *w.pod.Spec.TerminationGracePeriodSeconds
	}
	pre := preStopSeconds(audit)
	if need := pre + int64(cfg.ShutdownTimeout.D().Seconds()); grace <= need {
		t.Errorf("terminationGracePeriodSeconds %d <= preStop %ds + shutdown_timeout %s: the drain would be killed", grace, pre, cfg.ShutdownTimeout.D())
	}

	// Data: one volume per pod at data_dir, as the workload kind promises.
	dataMount := ""
	for _, m := range audit.VolumeMounts {
		if m.MountPath == cfg.DataDir {
			dataMount = m.Name
		}
	}
	switch w.kind {
	case "StatefulSet":
		s := r.statefulSets[w.name]
		found := false
		for _, c := range s.Spec.VolumeClaimTemplates {
			found = found || c.Name == dataMount
		}
		if !found {
			t.Errorf("data_dir %s is not on a volume claim template (mount %q)", cfg.DataDir, dataMount)
		}
		if s.Spec.UpdateStrategy.Type != "RollingUpdate" {
			t.Errorf("StatefulSet update strategy %q: rollouts must replace one pod at a time", s.Spec.UpdateStrategy.Type)
		}
	case "Deployment":
		d := r.deployments[w.name]
		eph := false
		for _, v := range w.pod.Spec.Volumes {
			eph = eph || (v.Name == dataMount && v.Ephemeral != nil)
		}
		if !eph {
			t.Errorf("data_dir %s is not on a per-pod ephemeral volume", cfg.DataDir)
		}
		ru := d.Spec.Strategy.RollingUpdate
		if d.Spec.Strategy.Type != "RollingUpdate" || ru == nil || ru.MaxUnavailable == nil || ru.MaxUnavailable.IntValue() != 0 {
			t.Errorf("Deployment strategy %+v: want RollingUpdate with maxUnavailable 0 (a new pod is ready before an old one stops)", d.Spec.Strategy)
		}
		q := false
		for _, s := range cfg.Sinks {
			q = q || (s.Query && s.Plugin == "clickhouse")
		}
		if !q {
			t.Error("a Deployment's volumes die with their pods: the query sink must be shared (ClickHouse)")
		}
	}

	// Security context of every container.
	for _, c := range w.pod.Spec.Containers {
		sc := c.SecurityContext
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
			sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" {
			t.Errorf("container %s: securityContext %+v is not locked down", c.Name, sc)
		}
		if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("container %s: no CPU request or memory limit", c.Name)
		}
	}
	if psc := w.pod.Spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		t.Error("pods do not run as non-root")
	}
	if want := r.str("image.repository") + ":" + orDefault(r.str("image.tag"), "0.1.0"); r.str("image.digest") == "" && audit.Image != want {
		t.Errorf("image %s, want %s (image.repository:image.tag)", audit.Image, want)
	}

	// Services reach the pods on the proxy (clients) or admin (metrics) port only.
	for _, s := range r.services {
		if !selects(t, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, podLabels) {
			t.Errorf("Service %s does not select the pods", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.StrVal != "proxy" && p.TargetPort.StrVal != "admin" {
				t.Errorf("Service %s port %s targets %s: only the proxy and admin ports may be exposed", s.Name, p.Name, p.TargetPort.String())
			}
		}
	}

	// Flowker is never reachable around the sidecar.
	switch mode {
	case "sidecar":
		checkSidecarIsolation(t, r, w, cfg, proxyPort, admin, grace)
	case "gateway":
		checkGatewayIsolation(t, r, w, cfg)
	}
	if r.bool("networkPolicy.enabled") {
		own := 0
		for _, np := range r.policies {
			if !selects(t, &np.Spec.PodSelector, podLabels) {
				continue
			}
			own++
			for _, rule := range np.Spec.Ingress {
				for _, p := range rule.Ports {
					if p.Port == nil || (p.Port.IntVal != proxyPort && p.Port.IntVal != admin) {
						t.Errorf("NetworkPolicy %s admits port %v on the pods: only the proxy and admin ports", np.Name, p.Port)
					}
				}
				if len(rule.Ports) == 0 {
					t.Errorf("NetworkPolicy %s admits every port", np.Name)
				}
			}
		}
		if own != 1 {
			t.Errorf("%d NetworkPolicies select the pods, want 1", own)
		}
	}

	// A PodDisruptionBudget whenever more than one pod can run.
	multi := r.int("replicaCount") > 1 || (r.bool("autoscaling.enabled") && r.int("autoscaling.maxReplicas") > 1)
	if multi != (len(r.pdbs) == 1) || len(r.pdbs) > 1 {
		t.Errorf("replicas %d (autoscaling %v): %d PodDisruptionBudget(s)", r.int("replicaCount"), r.bool("autoscaling.enabled"), len(r.pdbs))
	}
	for _, p := range r.pdbs {
		if !selects(t, p.Spec.Selector, podLabels) {
			t.Errorf("PDB %s does not select the pods", p.Name)
		}
		if p.Spec.MaxUnavailable == nil || p.Spec.MaxUnavailable.IntValue() < 1 || (w.replicas != nil && p.Spec.MaxUnavailable.IntValue() >= int(*w.replicas)) {
			t.Errorf("PDB %s maxUnavailable %v with %v replicas: evictions must proceed one at a time and keep some pods", p.Name, p.Spec.MaxUnavailable, w.replicas)
		}
	}
	if r.bool("autoscaling.enabled") {
		if len(r.hpas) != 1 || w.replicas != nil {
			t.Errorf("autoscaling: %d HPA, workload replicas %v (must be left to the HPA)", len(r.hpas), w.replicas)
		}
		for _, h := range r.hpas {
			if h.Spec.ScaleTargetRef.Kind != w.kind || h.Spec.ScaleTargetRef.Name != w.name {
				t.Errorf("HPA scales %s/%s, not the workload", h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
			}
		}
	}

	checkMonitoring(t, r, w, audit, admin)

	if !strings.Contains(r.notes, r.str("secrets.existingSecret")) || !strings.Contains(r.notes, "rollout status") {
		t.Errorf("NOTES do not say which Secret to create and how to follow the rollout:\n%s", r.notes)
	}
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func preStopSeconds(c corev1.Container) int64 {
	if c.Lifecycle == nil || c.Lifecycle.PreStop == nil || c.Lifecycle.PreStop.Sleep == nil {
		return 0
	}
	return c.Lifecycle.PreStop.Sleep.Seconds
}

// mountedConfig returns the text of the ConfigMap file mounted at file in c.
func mountedConfig(t *testing.T, r *rendered, w workload, c corev1.Container, file string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		key := ""
		switch {
		case m.MountPath == file && m.SubPath != "":
			key = m.SubPath
		case m.MountPath == path.Dir(file) && m.SubPath == "":
			key = path.Base(file)
		default:
			continue
		}
		for _, v := range w.pod.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := r.configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %s is not rendered", v.Name, v.ConfigMap.Name)
			}
			data, ok := cm.Data[key]
			if !ok {
				t.Fatalf("ConfigMap %s has no key %s", cm.Name, key)
			}
			return data
		}
	}
	t.Fatalf("--config %s is not a file of a mounted ConfigMap", file)
	return ""
}

// checkSidecarIsolation: Flowker shares the pod, binds loopback, exposes no port, and its
// readiness goes through the sidecar.
func checkSidecarIsolation(t *testing.T, r *rendered, w workload, cfg *config.Config, proxyPort, admin int32, grace int64) {
	t.Helper()
	fl, ok := w.container("flowker")
	if !ok {
		t.Fatal("sidecar mode: no flowker container in the pod")
	}
	if len(fl.Ports) > 0 {
		t.Errorf("the flowker container declares ports %v: Flowker must be reachable only through the sidecar", fl.Ports)
	}
	flowkerSecret := map[string]bool{r.str("sidecar.flowker.existingSecret"): true}
	flEnv := sidecarEnv(t, fl, flowkerSecret)
	host, port, err := net.SplitHostPort(flEnv["SERVER_ADDRESS"])
	if err != nil || host != "127.0.0.1" {
		t.Errorf("Flowker's SERVER_ADDRESS %q: must be bound to 127.0.0.1", flEnv["SERVER_ADDRESS"])
	}
	up, err := url.Parse(cfg.Upstream.URL)
	if err != nil || up.Hostname() != "127.0.0.1" || up.Port() != port {
		t.Errorf("upstream.url %s is not Flowker on loopback port %s", cfg.Upstream.URL, port)
	}
	if p, _ := probePort(t, fl, "readiness", fl.ReadinessProbe); p != proxyPort {
		t.Errorf("Flowker's readiness probe goes to port %d, want the sidecar's proxy port %d (Flowker's own is loopback)", p, proxyPort)
	}
	if n, _ := strconv.Atoi(port); int32(n) == proxyPort || int32(n) == admin {
		t.Errorf("Flowker's port %s collides with the sidecar's ports", port)
	}
	if fp := preStopSeconds(fl); fp <= preStopSeconds(mustContainer(t, w, "flowker-audit")) || fp >= grace {
		t.Errorf("Flowker's preStop %ds must outlast the sidecar's (%ds) and fit the grace period (%ds)", fp, preStopSeconds(mustContainer(t, w, "flowker-audit")), grace)
	}
}

func mustContainer(t *testing.T, w workload, name string) corev1.Container {
	t.Helper()
	c, ok := w.container(name)
	if !ok {
		t.Fatalf("no container %s", name)
	}
	return c
}

// checkGatewayIsolation: the gateway forwards to Flowker's Service, and a NetworkPolicy on
// Flowker's pods admits Flowker's port from the gateway pods only.
func checkGatewayIsolation(t *testing.T, r *rendered, w workload, cfg *config.Config) {
	t.Helper()
	if _, ok := w.container("flowker"); ok {
		t.Error("gateway mode: Flowker runs in the gateway's pods")
	}
	ns := orDefault(r.str("gateway.flowker.namespace"), namespace)
	up, err := url.Parse(cfg.Upstream.URL)
	wantHost := r.str("gateway.flowker.serviceName") + "." + ns + ".svc"
	if err != nil || up.Hostname() != wantHost || up.Port() != strconv.Itoa(r.int("gateway.flowker.port")) {
		t.Errorf("upstream.url %s, want Flowker's Service %s:%d", cfg.Upstream.URL, wantHost, r.int("gateway.flowker.port"))
	}
	if !r.bool("gateway.isolateFlowker") {
		return
	}
	flowkerPods := map[string]string{}
	for k, v := range r.val("gateway.flowker.podSelector").(map[string]any) {
		flowkerPods[k] = v.(string)
	}
	found := 0
	for _, np := range r.policies {
		if !selects(t, &np.Spec.PodSelector, flowkerPods) {
			continue
		}
		found++
		if len(np.Spec.PolicyTypes) != 1 || np.Spec.PolicyTypes[0] != "Ingress" {
			t.Errorf("NetworkPolicy %s: policyTypes %v", np.Name, np.Spec.PolicyTypes)
		}
		if got := orDefault(np.Namespace, namespace); got != ns {
			t.Errorf("NetworkPolicy %s is in namespace %s, Flowker in %s", np.Name, got, ns)
		}
		if len(np.Spec.Ingress) == 0 {
			t.Errorf("NetworkPolicy %s admits nothing: the gateway could not reach Flowker", np.Name)
		}
		for _, rule := range np.Spec.Ingress {
			if len(rule.From) == 0 {
				t.Errorf("NetworkPolicy %s admits every source to Flowker", np.Name)
			}
			for _, peer := range rule.From {
				if peer.PodSelector == nil || peer.IPBlock != nil || !selects(t, peer.PodSelector, w.pod.Labels) {
					t.Errorf("NetworkPolicy %s admits %+v, not only the gateway pods", np.Name, peer)
				}
				if ns != namespace && (peer.NamespaceSelector == nil || peer.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != namespace) {
					t.Errorf("NetworkPolicy %s: the gateway is in %s, Flowker in %s: the peer needs a namespaceSelector", np.Name, namespace, ns)
				}
			}
			for _, p := range rule.Ports {
				if p.Port == nil || p.Port.IntValue() != r.int("gateway.flowker.port") {
					t.Errorf("NetworkPolicy %s admits port %v, want Flowker's %d", np.Name, p.Port, r.int("gateway.flowker.port"))
				}
			}
		}
		// The gateway's own pods must not match (they would isolate themselves).
		if selects(t, &np.Spec.PodSelector, w.pod.Labels) {
			t.Errorf("NetworkPolicy %s selects the gateway pods too", np.Name)
		}
	}
	if found != 1 {
		t.Errorf("%d NetworkPolicies select Flowker's pods %v, want 1", found, flowkerPods)
	}
}

// checkMonitoring: the monitors scrape the pods' admin port and set the job label the alert
// rules select; the rules are the repository's alerts.
func checkMonitoring(t *testing.T, r *rendered, w workload, audit corev1.Container, admin int32) {
	t.Helper()
	job := r.str("metrics.jobLabel")
	if r.bool("metrics.podMonitor.enabled") != (len(r.podMonitors) == 1) {
		t.Errorf("podMonitor.enabled %v, %d PodMonitors", r.bool("metrics.podMonitor.enabled"), len(r.podMonitors))
	}
	if r.bool("metrics.serviceMonitor.enabled") != (len(r.svcMonitors) == 1) {
		t.Errorf("serviceMonitor.enabled %v, %d ServiceMonitors", r.bool("metrics.serviceMonitor.enabled"), len(r.svcMonitors))
	}
	if r.bool("metrics.prometheusRule.enabled") != (len(r.rules) == 1) {
		t.Errorf("prometheusRule.enabled %v, %d PrometheusRules", r.bool("metrics.prometheusRule.enabled"), len(r.rules))
	}
	setsJob := func(rls []monitoringRelabel) bool {
		for _, rl := range rls {
			if rl.target == "job" && rl.replacement == job && len(rl.sources) == 0 {
				return true
			}
		}
		return false
	}
	for _, pm := range r.podMonitors {
		if !selects(t, &pm.Spec.Selector, w.pod.Labels) {
			t.Errorf("PodMonitor %s does not select the pods", pm.Name)
		}
		if len(pm.Spec.PodMetricsEndpoints) != 1 {
			t.Fatalf("PodMonitor %s: %d endpoints", pm.Name, len(pm.Spec.PodMetricsEndpoints))
		}
		ep := pm.Spec.PodMetricsEndpoints[0]
		if ep.Port == nil {
			t.Fatalf("PodMonitor %s: no port", pm.Name)
		}
		if p, ok := containerPort(audit, *ep.Port); !ok || p != admin || (ep.Path != "" && ep.Path != "/metrics") {
			t.Errorf("PodMonitor %s scrapes port %q (%d) %s, want the admin port %d /metrics", pm.Name, *ep.Port, p, ep.Path, admin)
		}
		var rls []monitoringRelabel
		for _, rl := range ep.RelabelConfigs {
			rls = append(rls, relabel(rl.TargetLabel, rl.Replacement, len(rl.SourceLabels)))
		}
		if !setsJob(rls) {
			t.Errorf("PodMonitor %s does not set job=%q, which the alert rules select", pm.Name, job)
		}
	}
	for _, sm := range r.svcMonitors {
		matched := 0
		for _, s := range r.services {
			if !selects(t, &sm.Spec.Selector, s.Labels) {
				continue
			}
			matched++
			for _, ep := range sm.Spec.Endpoints {
				ok := false
				for _, p := range s.Spec.Ports {
					ok = ok || (p.Name == ep.Port && p.TargetPort.StrVal == "admin")
				}
				if !ok {
					t.Errorf("ServiceMonitor %s endpoint port %q is not Service %s's admin port", sm.Name, ep.Port, s.Name)
				}
			}
		}
		if matched != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services, want the one with the admin port", sm.Name, matched)
		}
		for _, ep := range sm.Spec.Endpoints {
			var rls []monitoringRelabel
			for _, rl := range ep.RelabelConfigs {
				rls = append(rls, relabel(rl.TargetLabel, rl.Replacement, len(rl.SourceLabels)))
			}
			if !setsJob(rls) {
				t.Errorf("ServiceMonitor %s does not set job=%q, which the alert rules select", sm.Name, job)
			}
		}
	}
	for _, pr := range r.rules {
		checkRulesAreTheRepositorys(t, pr.Name, pr.Spec, job)
	}
}

type monitoringRelabel struct {
	target, replacement string
	sources             []string
}

func relabel(target string, replacement *string, sources int) monitoringRelabel {
	m := monitoringRelabel{target: target, sources: make([]string, sources)}
	if replacement != nil {
		m.replacement = *replacement
	}
	return m
}

// checkRulesAreTheRepositorys: the PrometheusRule's groups parse as Prometheus rules, select
// the job the monitors set, and are deployments/prometheus/alerts.yaml otherwise.
func checkRulesAreTheRepositorys(t *testing.T, name string, spec any, job string) {
	t.Helper()
	got, err := yaml.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(got, false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("PrometheusRule %s: %v", name, errs)
	}
	repo, err := os.ReadFile(path.Join(moduleRootDir(), "deployments", "prometheus", "alerts.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, errs := rulefmt.Parse([]byte(strings.ReplaceAll(string(repo), `job="flowker-audit"`, `job="`+job+`"`)), false, model.UTF8Validation, parser.NewParser(parser.Options{}), slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	gy, _ := yaml.Marshal(groups)
	wy, _ := yaml.Marshal(want)
	if string(gy) != string(wy) {
		t.Errorf("PrometheusRule %s differs from deployments/prometheus/alerts.yaml (copy it to the chart's files/alerts.yaml)", name)
	}
	sawUp := false
	for _, g := range groups.Groups {
		for _, rule := range g.Rules {
			for _, m := range regexp.MustCompile(`job="([^"]*)"`).FindAllStringSubmatch(rule.Expr, -1) {
				sawUp = true
				if m[1] != job {
					t.Errorf("alert %s selects job %q; the monitors set %q", rule.Alert, m[1], job)
				}
			}
		}
	}
	if !sawUp {
		t.Error("no rule selects the job (FlowkerAuditDown)")
	}
}

func moduleRootDir() string {
	root, _ := os.Getwd()
	return path.Join(root, "..", "..", "..")
}
