package ops

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// k8sObjects are the decoded manifests of deployments/kubernetes.
type k8sObjects struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	pvcs        map[string]*corev1.PersistentVolumeClaim
	deployments map[string]*appsv1.Deployment
	sets        map[string]*appsv1.StatefulSet
	pdbs        map[string]*policyv1.PodDisruptionBudget
	accounts    map[string]*corev1.ServiceAccount
	services    map[string]*corev1.Service
	policies    map[string]*networkingv1.NetworkPolicy
}

// kustomization is the subset of kustomize's Kustomization the manifests use (strict).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
}

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// loadKubernetes decodes every manifest strictly into the Kubernetes API types: an unknown or
// misspelt field, a wrong type or a duplicate key fails.
func loadKubernetes(t *testing.T) (k8sObjects, kustomization) {
	t.Helper()
	dir := deployFile(t, "kubernetes")
	var k kustomization
	if err := yaml.UnmarshalStrict(readFile(t, filepath.Join(dir, "kustomization.yaml")), &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization.yaml: %s %s", k.APIVersion, k.Kind)
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, r := range k.Resources {
		listed[r] = true
		if !fileExists(filepath.Join(dir, r)) {
			t.Errorf("kustomization lists %s, which does not exist", r)
		}
	}
	o := k8sObjects{configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, deployments: map[string]*appsv1.Deployment{},
		sets: map[string]*appsv1.StatefulSet{}, pdbs: map[string]*policyv1.PodDisruptionBudget{}, accounts: map[string]*corev1.ServiceAccount{},
		services: map[string]*corev1.Service{}, policies: map[string]*networkingv1.NetworkPolicy{}}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" || base == "values.yaml" { // values.yaml: the chart's values flowker-audit.yaml is rendered with
			continue
		}
		if !listed[base] {
			t.Errorf("%s is not listed in kustomization.yaml", base)
		}
		for i, doc := range docSep.Split(string(readFile(t, f)), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
				t.Errorf("%s document %d: %v", base, i+1, err)
				continue
			}
			where := base + " " + tm.Kind
			decode := func(v any) bool {
				if err := yaml.UnmarshalStrict([]byte(doc), v); err != nil {
					t.Errorf("%s: %v", where, err)
					return false
				}
				return true
			}
			var meta *metav1.ObjectMeta
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 ConfigMap":
				v := &corev1.ConfigMap{}
				if decode(v) {
					o.configMaps[v.Name], meta = v, &v.ObjectMeta
				}
			case "v1 Secret":
				v := &corev1.Secret{}
				if decode(v) {
					o.secrets[v.Name], meta = v, &v.ObjectMeta
				}
			case "v1 PersistentVolumeClaim":
				v := &corev1.PersistentVolumeClaim{}
				if decode(v) {
					o.pvcs[v.Name], meta = v, &v.ObjectMeta
				}
			case "apps/v1 Deployment":
				v := &appsv1.Deployment{}
				if decode(v) {
					o.deployments[v.Name], meta = v, &v.ObjectMeta
				}
			case "apps/v1 StatefulSet":
				v := &appsv1.StatefulSet{}
				if decode(v) {
					o.sets[v.Name], meta = v, &v.ObjectMeta
				}
			case "policy/v1 PodDisruptionBudget":
				v := &policyv1.PodDisruptionBudget{}
				if decode(v) {
					o.pdbs[v.Name], meta = v, &v.ObjectMeta
				}
			case "v1 ServiceAccount":
				v := &corev1.ServiceAccount{}
				if decode(v) {
					o.accounts[v.Name], meta = v, &v.ObjectMeta
				}
			case "v1 Service":
				v := &corev1.Service{}
				if decode(v) {
					o.services[v.Name], meta = v, &v.ObjectMeta
				}
			case "networking.k8s.io/v1 NetworkPolicy":
				v := &networkingv1.NetworkPolicy{}
				if decode(v) {
					o.policies[v.Name], meta = v, &v.ObjectMeta
				}
			default:
				t.Errorf("%s document %d: unexpected %s %s", base, i+1, tm.APIVersion, tm.Kind)
			}
			if meta != nil {
				for _, e := range validation.IsDNS1123Subdomain(meta.Name) {
					t.Errorf("%s %q: %s", where, meta.Name, e)
				}
				if meta.Namespace != "" {
					t.Errorf("%s %q sets a namespace: kustomization.yaml sets it", where, meta.Name)
				}
			}
		}
	}
	return o, k
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

// secretValue resolves a secretKeyRef from the manifests' Secrets.
func (o k8sObjects) secretValue(t *testing.T, ref *corev1.SecretKeySelector) (string, bool) {
	t.Helper()
	s, ok := o.secrets[ref.Name]
	if !ok {
		return "", false
	}
	if v, ok := s.StringData[ref.Key]; ok {
		return v, true
	}
	if v, ok := s.Data[ref.Key]; ok {
		return string(v), true
	}
	return "", false
}

// containerEnv resolves a container's environment (values and secret references).
func (o k8sObjects) containerEnv(t *testing.T, c corev1.Container) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			v, ok := o.secretValue(t, e.ValueFrom.SecretKeyRef)
			if !ok {
				t.Errorf("container %s: %s refers to secret %s key %s, which the manifests do not define",
					c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key)
			}
			env[e.Name] = v
		default:
			t.Errorf("container %s: %s: only values and secretKeyRef are checked here", c.Name, e.Name)
		}
	}
	for _, ef := range c.EnvFrom {
		t.Errorf("container %s: envFrom %+v: name every variable so that it can be checked", c.Name, ef)
	}
	return env
}

// sidecarSetup is the Deployment's sidecar with what it is configured with.
type sidecarSetup struct {
	set       *appsv1.StatefulSet
	sidecar   corev1.Container
	flowker   corev1.Container
	env       map[string]string
	configRaw []byte
}

func findContainer(t *testing.T, d *appsv1.StatefulSet, name string) corev1.Container {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("statefulset %s has no container %s", d.Name, name)
	return corev1.Container{}
}

// sidecar resolves the sidecar container, its environment and the configuration it mounts.
func (o k8sObjects) sidecar(t *testing.T) sidecarSetup {
	t.Helper()
	d := o.sets["flowker"]
	if d == nil {
		t.Fatal("no StatefulSet flowker")
	}
	s := sidecarSetup{set: d, sidecar: findContainer(t, d, "flowker-audit"), flowker: findContainer(t, d, "flowker")}
	s.env = o.containerEnv(t, s.sidecar)
	args := append(append([]string{}, s.sidecar.Command...), s.sidecar.Args...)
	if len(args) != 3 || args[0] != "serve" || args[1] != "--config" {
		t.Fatalf("sidecar args %v: want serve --config FILE", args)
	}
	cfgPath := args[2]
	for _, m := range s.sidecar.VolumeMounts {
		key := path.Base(cfgPath)
		switch {
		case m.MountPath == cfgPath && m.SubPath != "":
			key = m.SubPath
		case path.Dir(cfgPath) == m.MountPath && m.SubPath == "":
		default:
			continue
		}
		for _, v := range d.Spec.Template.Spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm := o.configMaps[v.ConfigMap.Name]
			if cm == nil {
				t.Fatalf("volume %s: ConfigMap %s is not in the manifests", v.Name, v.ConfigMap.Name)
			}
			data, ok := cm.Data[key]
			if !ok {
				t.Fatalf("ConfigMap %s has no key %s", cm.Name, key)
			}
			s.configRaw = []byte(data)
		}
	}
	if s.configRaw == nil {
		t.Fatalf("--config %s is not a file of a mounted ConfigMap", cfgPath)
	}
	return s
}

func containerPort(c corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// probePort resolves a probe's port: a name is looked up among the container's own ports (as
// the kubelet does), a number is used as it is.
func probePort(t *testing.T, c corev1.Container, what string, p *corev1.Probe) int32 {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("container %s: no HTTP %s probe", c.Name, what)
	}
	port := p.HTTPGet.Port
	if port.Type == intstr.String {
		n, ok := containerPort(c, port.StrVal)
		if !ok {
			t.Errorf("container %s: %s probe port %q is not one of the container's own ports", c.Name, what, port.StrVal)
		}
		return n
	}
	return port.IntVal
}

// TestKubernetesManifests decodes deployments/kubernetes strictly into the Kubernetes API types
// and checks the sidecar pattern: Flowker and the sidecar in one pod, Flowker on loopback, the
// Service on the sidecar's proxy port only, probes on /healthz and /readyz of the admin port,
// resources and a locked-down securityContext, the journal on a PVC, every secret reference
// resolvable, a NetworkPolicy that admits only the proxy port (and the admin port from the
// monitoring namespace), and the ConfigMap's config.yaml passing config.Parse with the
// Deployment's environment.
func TestKubernetesManifests(t *testing.T) {
	o, k := loadKubernetes(t)
	if k.Namespace == "" {
		t.Error("kustomization.yaml sets no namespace")
	}
	s := o.sidecar(t)
	checkEnvNames(t, "statefulset flowker-audit container", s.env)
	cfg := parseDeployedConfig(t, "the ConfigMap's config.yaml", s.configRaw, s.env)
	d := s.set
	spec := d.Spec.Template.Spec
	podLabels := labels.Set(d.Spec.Template.Labels)

	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || !sel.Matches(podLabels) {
		t.Errorf("statefulset selector %v does not match its pod labels %v", d.Spec.Selector, podLabels)
	}
	// Several pods, each with its own volume (claim template), rolled one at a time, and a PDB.
	if r := d.Spec.Replicas; r == nil || *r < 2 || d.Spec.UpdateStrategy.Type != appsv1.RollingUpdateStatefulSetStrategyType {
		t.Errorf("want at least 2 replicas rolled one at a time (RollingUpdate), got %v %q", d.Spec.Replicas, d.Spec.UpdateStrategy.Type)
	}
	pdbOK := false
	for _, p := range o.pdbs {
		ps, err := metav1.LabelSelectorAsSelector(p.Spec.Selector)
		pdbOK = pdbOK || (err == nil && ps.Matches(podLabels) && p.Spec.MaxUnavailable != nil && p.Spec.MaxUnavailable.IntValue() == 1)
	}
	if !pdbOK {
		t.Error("no PodDisruptionBudget with maxUnavailable 1 selects the pods")
	}

	// Flowker: its published image, on loopback, where the sidecar's upstream points.
	fenv := o.containerEnv(t, s.flowker)
	if !strings.HasPrefix(s.flowker.Image, "ghcr.io/lerianstudio/flowker:") {
		t.Errorf("flowker image %s", s.flowker.Image)
	}
	host, port, err := net.SplitHostPort(fenv["SERVER_ADDRESS"])
	if err != nil || host != "127.0.0.1" {
		t.Errorf("Flowker's SERVER_ADDRESS %q: want 127.0.0.1:PORT (reachable only inside the pod)", fenv["SERVER_ADDRESS"])
	}
	up, err := url.Parse(cfg.Upstream.URL)
	if err != nil || (up.Hostname() != "127.0.0.1" && up.Hostname() != "localhost") || up.Port() != port {
		t.Errorf("upstream.url %s is not Flowker's %s", cfg.Upstream.URL, fenv["SERVER_ADDRESS"])
	}
	if len(s.flowker.Ports) > 0 {
		t.Errorf("the flowker container declares ports %v: it must not be reachable from outside the pod", s.flowker.Ports)
	}
	flowkerPort, _ := strconv.Atoi(port)
	if got := fenv["AUDIT_DB_HOST"]; got == "" {
		t.Error("Flowker needs AUDIT_DB_HOST")
	}

	// Sidecar ports and probes.
	proxyPort, ok1 := containerPort(s.sidecar, "proxy")
	adminPort, ok2 := containerPort(s.sidecar, "admin")
	if !ok1 || !ok2 || int(proxyPort) != portOf(t, cfg.Listen.Addr) || int(adminPort) != portOf(t, cfg.Admin.Addr) {
		t.Errorf("sidecar ports proxy=%d admin=%d, the configuration listens on %s and %s", proxyPort, adminPort, cfg.Listen.Addr, cfg.Admin.Addr)
	}
	if h, _, _ := net.SplitHostPort(cfg.Admin.Addr); h == "127.0.0.1" || h == "localhost" {
		t.Errorf("admin.addr %s: the kubelet's probes and Prometheus cannot reach loopback", cfg.Admin.Addr)
	}
	for _, p := range []struct {
		what, path string
		probe      *corev1.Probe
	}{{"liveness", "/healthz", s.sidecar.LivenessProbe}, {"readiness", "/readyz", s.sidecar.ReadinessProbe}, {"startup", "/healthz", s.sidecar.StartupProbe}} {
		if n := probePort(t, s.sidecar, p.what, p.probe); n != adminPort || p.probe.HTTPGet.Path != p.path {
			t.Errorf("sidecar %s probe: %s on port %d, want %s on the admin port %d", p.what, p.probe.HTTPGet.Path, n, p.path, adminPort)
		}
	}
	if p := s.flowker.ReadinessProbe; p != nil {
		if n := probePort(t, s.flowker, "readiness", p); n != proxyPort {
			t.Errorf("Flowker's readiness probe port %d: only the sidecar's proxy port %d reaches Flowker from the kubelet", n, proxyPort)
		}
	}
	if lc := s.sidecar.Lifecycle; lc == nil || lc.PreStop == nil || lc.PreStop.Sleep == nil {
		t.Error("sidecar: no preStop sleep (the image has no shell for an exec hook)")
	}
	grace := int64(30)
	if spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	pre := int64(0)
	if lc := s.sidecar.Lifecycle; lc != nil && lc.PreStop != nil && lc.PreStop.Sleep != nil {
		pre = lc.PreStop.Sleep.Seconds
	}
	if time.Duration(grace-pre)*time.Second <= cfg.ShutdownTimeout.D() {
		t.Errorf("terminationGracePeriodSeconds %d minus preStop %ds leaves no more than shutdown_timeout %s", grace, pre, cfg.ShutdownTimeout)
	}

	// Resources and security, on both containers.
	for _, c := range spec.Containers {
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okr := c.Resources.Requests[r]
			lim, okl := c.Resources.Limits[r]
			if !okr || !okl || req.Cmp(lim) > 0 {
				t.Errorf("container %s: %s request %v / limit %v", c.Name, r, req.String(), lim.String())
			}
		}
		sc := c.SecurityContext
		podSC := spec.SecurityContext
		nonRoot := (sc != nil && sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (podSC != nil && podSC.RunAsNonRoot != nil && *podSC.RunAsNonRoot)
		if !nonRoot {
			t.Errorf("container %s may run as root", c.Name)
		}
		if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("container %s: root filesystem not read-only", c.Name)
		}
		if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("container %s: privilege escalation allowed", c.Name)
		}
		if sc == nil || sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s: capabilities not dropped", c.Name)
		}
		if sc != nil && sc.Privileged != nil && *sc.Privileged {
			t.Errorf("container %s is privileged", c.Name)
		}
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		t.Error("the pod mounts a service account token it does not need")
	}

	// Volumes: data_dir on the PVC, /tmp writable (plugin sockets), secrets resolvable.
	mounts := map[string]string{}
	for _, m := range s.sidecar.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	vols := map[string]corev1.Volume{}
	for _, v := range spec.Volumes {
		vols[v.Name] = v
	}
	claimed := false
	for _, pvc := range d.Spec.VolumeClaimTemplates {
		if pvc.Name != mounts[cfg.DataDir] {
			continue
		}
		claimed = true
		size := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
		if size.Cmp(*resource.NewQuantity(int64(cfg.Journal.MaxBytes)*2, resource.BinarySI)) < 0 {
			t.Errorf("claim %s of %s is less than twice journal.max_bytes (%d): the query store shares it", pvc.Name, size.String(), cfg.Journal.MaxBytes)
		}
	}
	if !claimed {
		t.Errorf("data_dir %s is not mounted from a volume claim template (one volume per pod)", cfg.DataDir)
	}
	if v, ok := vols[mounts["/tmp"]]; !ok || v.EmptyDir == nil {
		t.Error("the sidecar has a read-only root filesystem but no writable /tmp (go-plugin's sockets)")
	}
	for _, sk := range cfg.Sinks {
		if p, ok := sk.Config["path"].(string); ok && !strings.HasPrefix(p, cfg.DataDir+"/") {
			t.Errorf("sink %s writes %s, outside the data volume %s", sk.Name, p, cfg.DataDir)
		}
	}

	// The Service clients call (Flowker's name) targets the sidecar's proxy port, and only it;
	// the headless one (stable pod names) the admin port only.
	for name, want := range map[string]int32{"flowker": proxyPort, "flowker-headless": adminPort} {
		svc := o.services[name]
		if svc == nil {
			t.Fatalf("no Service %s", name)
		}
		if !labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels) || len(svc.Spec.Selector) == 0 {
			t.Errorf("service %s selector %v does not select the pod %v", name, svc.Spec.Selector, podLabels)
		}
		for _, p := range svc.Spec.Ports {
			tp := p.TargetPort
			target := tp.IntVal
			if tp.Type == intstr.String {
				target, _ = containerPort(s.sidecar, tp.StrVal)
			}
			if target != want {
				t.Errorf("service %s port %d targets %s (%d), want %d", name, p.Port, tp.String(), target, want)
			}
		}
	}
	if d.Spec.ServiceName != "flowker-headless" {
		t.Errorf("statefulset serviceName %q", d.Spec.ServiceName)
	}

	// The NetworkPolicy admits the proxy port, the admin port from monitoring only, nothing else.
	if len(o.policies) == 0 {
		t.Fatal("no NetworkPolicy")
	}
	for _, np := range o.policies {
		psel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
		if err != nil || psel.Empty() || !psel.Matches(podLabels) {
			t.Errorf("networkpolicy %s does not select the pod", np.Name)
		}
		if !contains(policyTypes(np), "Ingress") {
			t.Errorf("networkpolicy %s does not restrict ingress", np.Name)
		}
		for i, rule := range np.Spec.Ingress {
			if len(rule.Ports) == 0 {
				t.Errorf("networkpolicy %s rule %d admits every port (Flowker's %d included)", np.Name, i, flowkerPort)
			}
			for _, p := range rule.Ports {
				n := p.Port.IntVal
				if p.Port.Type == intstr.String {
					n, _ = containerPort(s.sidecar, p.Port.StrVal)
				}
				switch n {
				case proxyPort:
				case adminPort:
					if len(rule.From) != 1 || rule.From[0].NamespaceSelector == nil || rule.From[0].PodSelector != nil ||
						rule.From[0].NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] != "monitoring" {
						t.Errorf("networkpolicy %s admits the admin port from %+v, want the monitoring namespace only", np.Name, rule.From)
					}
				default:
					t.Errorf("networkpolicy %s admits port %d (only %d and %d may be reachable; Flowker is %d)", np.Name, n, proxyPort, adminPort, flowkerPort)
				}
				if p.EndPort != nil {
					t.Errorf("networkpolicy %s: a port range", np.Name)
				}
			}
		}
	}
	if a := d.Spec.Template.Annotations; a["prometheus.io/port"] != strconv.Itoa(int(adminPort)) || a["prometheus.io/scrape"] != "true" {
		t.Errorf("pod annotations %v do not point Prometheus at the admin port %d", a, adminPort)
	}
}

func policyTypes(np *networkingv1.NetworkPolicy) []string {
	var out []string
	for _, p := range np.Spec.PolicyTypes {
		out = append(out, string(p))
	}
	return out
}

// TestKubernetesConfigRuns runs the sidecar with the ConfigMap's config.yaml and the
// Deployment's environment, changing only what points outside this machine: Flowker is the fake,
// data_dir a temporary directory, ClickHouse a closed loopback port. The sidecar starts, proxies
// and audits, and is ready while ClickHouse is unreachable (the journal keeps the events for it),
// exactly as the manifests promise.
func TestKubernetesConfigRuns(t *testing.T) {
	o, _ := loadKubernetes(t)
	s := o.sidecar(t)
	cfg := parseDeployedConfig(t, "the ConfigMap's config.yaml", s.configRaw, s.env)
	_, fakeURL := fakeFlowker(t)
	dir := t.TempDir()
	closed := closedPort(t)
	cfg.Upstream.URL = fakeURL
	for i, sk := range cfg.Sinks {
		if p, ok := sk.Config["path"].(string); ok {
			cfg.Sinks[i].Config["path"] = filepath.Join(dir, strings.TrimPrefix(p, cfg.DataDir+"/"))
		}
		if sk.Plugin == "clickhouse" {
			cfg.Sinks[i].Config["addr"] = []any{closed}
		}
	}
	cfg.DataDir = dir
	// Shutdown waits up to 3/4 of shutdown_timeout for the (unreachable) warehouse to catch up.
	cfg.ShutdownTimeout = config.Duration(2 * time.Second)
	sc := startSidecar(t, cfg, nil, nil)

	code, body := readiness(t, sc.AdminURL)
	pollUntil(t, 30*time.Second, "ready with ClickHouse unreachable", func() bool {
		code, body = readiness(t, sc.AdminURL)
		return code == http.StatusOK && body.Checks["sink:warehouse"].Status == "down"
	})
	if r := testenv.Do(t, "GET", sc.AdminURL+"/healthz", nil, nil); r.Status != http.StatusOK {
		t.Errorf("/healthz: %d", r.Status)
	}
	r := testenv.Do(t, "POST", sc.ProxyURL+"/v1/workflows", map[string]any{"name": "k8s-config"}, map[string]string{"X-API-Key": testenv.FlowkerKey})
	if r.Status != http.StatusCreated || r.Header.Get("X-Audit-Id") == "" {
		t.Fatalf("a change through the sidecar: %d %s", r.Status, r.Body)
	}
	keys := strings.Split(s.env["FLOWKER_AUDIT_AUTH_API_KEYS"], ",")
	pollUntil(t, 30*time.Second, "the event in the audit API (query sink store)", func() bool {
		a := testenv.Do(t, "GET", sc.ProxyURL+"/v1/audit-events/"+r.Header.Get("X-Audit-Id"), nil, map[string]string{"X-API-Key": keys[0]})
		return a.Status == http.StatusOK
	})
	_, fams := scrape(t, sc.AdminURL)
	if v := fams.must(t, "flowker_audit_sink_up", lbl("sink", "warehouse")); v != 0 {
		t.Errorf("warehouse sink up = %v with ClickHouse unreachable", v)
	}
	if v := fams.must(t, "flowker_audit_sink_up", lbl("sink", "store")); v != 1 {
		t.Errorf("store sink up = %v", v)
	}
	if c, _ := sc.App.Journal().Cursor("warehouse"); c != 0 {
		t.Errorf("the unreachable warehouse acknowledged %d events", c)
	}
	if _, err := os.Stat(filepath.Join(dir, "journal.db")); err != nil {
		t.Errorf("no journal in data_dir: %v", err)
	}
	// Shutdown with the warehouse unreachable: the drain cannot complete, says what is left,
	// and the journal keeps it for the next start.
	if err := sc.stop(); err != nil {
		t.Fatal(err)
	}
	rep := sc.App.LastDrain()
	if rep == nil || rep.Complete || rep.Undelivered["warehouse"] == 0 || rep.Undelivered["store"] != 0 || rep.Retained == 0 {
		t.Errorf("drain report %+v: want the warehouse's events undelivered and retained, the store's delivered", rep)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
