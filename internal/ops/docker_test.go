package ops

import (
	"debug/elf"
	"encoding/json"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/flowker-audit/flowker-audit/internal/testenv"
)

// dockerInstr is one Dockerfile instruction (continuation lines joined).
type dockerInstr struct {
	cmd  string // upper case
	args string
	line int
}

// dockerStage is one FROM and the instructions that follow it.
type dockerStage struct {
	from, name string
	instrs     []dockerInstr
}

func (s dockerStage) all(cmd string) []dockerInstr {
	var out []dockerInstr
	for _, i := range s.instrs {
		if i.cmd == cmd {
			out = append(out, i)
		}
	}
	return out
}

var dockerVarRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

// parseDockerfile splits a Dockerfile into stages, expanding global ARG defaults in FROM lines.
func parseDockerfile(t *testing.T, data string) []dockerStage {
	t.Helper()
	var instrs []dockerInstr
	var cur strings.Builder
	start := 0
	for i, line := range strings.Split(data, "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur.Len() > 0 && strings.HasPrefix(trimmed, "#") {
			continue // a comment inside a continued instruction
		}
		if cur.Len() == 0 {
			start = i + 1
		}
		if strings.HasSuffix(trimmed, `\`) {
			cur.WriteString(strings.TrimSuffix(trimmed, `\`) + " ")
			continue
		}
		cur.WriteString(trimmed)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		instrs = append(instrs, dockerInstr{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), line: start})
		cur.Reset()
	}
	if cur.Len() > 0 {
		t.Fatalf("Dockerfile ends inside a continued instruction")
	}
	globals := map[string]string{}
	var stages []dockerStage
	for _, in := range instrs {
		switch {
		case in.cmd == "ARG" && len(stages) == 0:
			k, v, _ := strings.Cut(in.args, "=")
			globals[k] = v
		case in.cmd == "FROM":
			f := strings.Fields(dockerVarRe.ReplaceAllStringFunc(in.args, func(m string) string {
				sub := dockerVarRe.FindStringSubmatch(m)
				name := sub[1] + sub[2]
				v, ok := globals[name]
				if !ok {
					t.Errorf("line %d: FROM uses $%s, which no global ARG defines", in.line, name)
				}
				return v
			}))
			st := dockerStage{from: f[0]}
			for i := 1; i < len(f); i++ {
				if strings.HasPrefix(f[i], "--") {
					continue
				}
				if strings.EqualFold(f[i], "AS") && i+1 < len(f) {
					st.name = f[i+1]
					break
				}
			}
			stages = append(stages, st)
		case len(stages) == 0:
			t.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		default:
			stages[len(stages)-1].instrs = append(stages[len(stages)-1].instrs, in)
		}
	}
	return stages
}

// dockerCopy is a COPY instruction's flags, sources and destination.
type dockerCopy struct {
	from, chown string
	srcs        []string
	dst         string
}

func parseCopy(t *testing.T, in dockerInstr) dockerCopy {
	t.Helper()
	var c dockerCopy
	f := strings.Fields(in.args)
	for len(f) > 0 && strings.HasPrefix(f[0], "--") {
		k, v, _ := strings.Cut(strings.TrimPrefix(f[0], "--"), "=")
		switch k {
		case "from":
			c.from = v
		case "chown":
			c.chown = v
		default:
			t.Errorf("line %d: COPY flag --%s not understood by this check", in.line, k)
		}
		f = f[1:]
	}
	if len(f) < 2 {
		t.Fatalf("line %d: COPY needs a source and a destination", in.line)
	}
	c.srcs, c.dst = f[:len(f)-1], f[len(f)-1]
	return c
}

// execForm decodes an exec-form (JSON array) ENTRYPOINT or CMD; shell form fails: there is no
// shell in the image.
func execForm(t *testing.T, in dockerInstr) []string {
	t.Helper()
	var v []string
	if err := json.Unmarshal([]byte(in.args), &v); err != nil || len(v) == 0 {
		t.Fatalf("line %d: %s must be in exec form (a JSON array): the image has no shell: %s", in.line, in.cmd, in.args)
	}
	return v
}

// shellWords splits a RUN command line into words (double and single quotes, no expansion).
func shellWords(s string) []string {
	var out []string
	var cur strings.Builder
	in := rune(0)
	has := false
	for _, r := range s {
		switch {
		case in != 0 && r == in:
			in = 0
		case in != 0:
			cur.WriteRune(r)
		case r == '"' || r == '\'':
			in, has = r, true
		case r == ' ' || r == '\t':
			if has || cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
				has = false
			}
		default:
			cur.WriteRune(r)
		}
	}
	if has || cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// TestDockerfile checks deployments/docker/Dockerfile: a multi-stage build of a static binary
// (CGO_ENABLED=0) from every package it needs, a distroless/static (or scratch) final image
// running as a non-root user with no RUN and exec-form ENTRYPOINT/CMD, exposed ports and
// FLOWKER_AUDIT_* variables that match the configuration it ships.
func TestDockerfile(t *testing.T) {
	root := testenv.ModuleRoot(t)
	stages := parseDockerfile(t, string(readFile(t, deployFile(t, "docker", "Dockerfile"))))
	if len(stages) < 2 {
		t.Fatalf("%d stage(s): want a multi-stage build", len(stages))
	}
	names := map[string]dockerStage{}
	for _, s := range stages {
		if !regexp.MustCompile(`^[^:@]+(:[^:]+|@sha256:[0-9a-f]{64})$`).MatchString(s.from) && s.from != "scratch" {
			t.Errorf("FROM %s: pin a tag or digest", s.from)
		}
		if strings.HasSuffix(s.from, ":latest") {
			t.Errorf("FROM %s: pin a version, not latest", s.from)
		}
		if s.name != "" {
			names[s.name] = s
		}
	}
	final := stages[len(stages)-1]

	// The build stage: one go build of ./cmd/flowker-audit with CGO_ENABLED=0.
	var build dockerStage
	var buildRun dockerInstr
	for _, s := range stages[:len(stages)-1] {
		for _, r := range s.all("RUN") {
			if strings.Contains(r.args, "go build") {
				build, buildRun = s, r
			}
		}
	}
	if buildRun.cmd == "" {
		t.Fatal("no RUN go build in a build stage")
	}
	words := shellWords(buildRun.args)
	env := map[string]string{}
	for _, e := range build.all("ENV") {
		k, v, _ := strings.Cut(e.args, "=")
		env[k] = v
	}
	goAt := -1
	for i, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok && goAt < 0 && !strings.HasPrefix(w, "-") {
			env[k] = v
			continue
		}
		if w == "go" {
			goAt = i
			break
		}
	}
	if goAt < 0 || goAt+1 >= len(words) || words[goAt+1] != "build" {
		t.Fatalf("line %d: cannot find `go build` in %q", buildRun.line, buildRun.args)
	}
	if env["CGO_ENABLED"] != "0" {
		t.Errorf("line %d: go build without CGO_ENABLED=0 (the binary would not be static)", buildRun.line)
	}
	goArgs := words[goAt+2:]
	out := ""
	for i, w := range goArgs {
		if w == "-o" && i+1 < len(goArgs) {
			out = goArgs[i+1]
		}
	}
	if goArgs[len(goArgs)-1] != "./cmd/flowker-audit" || out == "" {
		t.Errorf("line %d: want go build -o OUT ./cmd/flowker-audit, got %q", buildRun.line, buildRun.args)
	}

	// Every package the binary is built from is copied into the build stage.
	var sources []string
	for _, c := range build.all("COPY") {
		cp := parseCopy(t, c)
		if cp.from != "" {
			continue
		}
		for _, s := range cp.srcs {
			if !fileExists(filepath.Join(root, s)) {
				t.Errorf("line %d: COPY %s: no such file in the repository", c.line, s)
			}
			sources = append(sources, strings.TrimSuffix(s, "/"))
		}
	}
	list := exec.Command("go", "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/flowker-audit")
	list.Dir = root
	deps, err := list.Output()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/flowker-audit: %v", err)
	}
	for _, dir := range strings.Fields(string(deps)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		covered := false
		for _, s := range sources {
			if rel == s || strings.HasPrefix(rel, s+"/") {
				covered = true
			}
		}
		if !covered {
			t.Errorf("the binary needs package %s, which the Dockerfile does not copy into the build stage", rel)
		}
	}
	for _, f := range []string{"go.mod", "go.sum"} {
		found := false
		for _, s := range sources {
			if s == f {
				found = true
			}
		}
		if !found {
			t.Errorf("the build stage does not copy %s", f)
		}
	}

	// The final stage: distroless/static or scratch, nothing run, a non-root user.
	if !strings.HasPrefix(final.from, "gcr.io/distroless/static") && final.from != "scratch" {
		t.Errorf("final image %s: want gcr.io/distroless/static* or scratch (no shell, no libc)", final.from)
	}
	for _, hc := range final.all("HEALTHCHECK") {
		// Exec form only (no shell in the image): the binary's own healthcheck subcommand.
		_, argsJSON, _ := strings.Cut(hc.args, "CMD ")
		argv := execForm(t, dockerInstr{cmd: "HEALTHCHECK", args: strings.TrimSpace(argsJSON), line: hc.line})
		if len(argv) < 2 || argv[1] != "healthcheck" {
			t.Errorf("line %d: HEALTHCHECK %v: want the binary's healthcheck subcommand", hc.line, argv)
		}
	}
	for _, cmd := range []string{"RUN", "SHELL"} {
		for _, in := range final.all(cmd) {
			t.Errorf("line %d: %s in the final stage: it needs a shell the image does not have", in.line, cmd)
		}
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Fatal("the final stage sets no USER (it would run as root)")
	}
	user := users[len(users)-1].args
	uid, _, _ := strings.Cut(user, ":")
	if n, err := strconv.Atoi(uid); (err == nil && n == 0) || uid == "root" || (err != nil && uid != "nonroot") {
		t.Errorf("USER %s: want a non-root numeric uid (or distroless nonroot)", user)
	}
	if final.from == "scratch" {
		t.Error("scratch needs an /etc/passwd entry for the user: this check expects distroless")
	}
	copies := map[string]dockerCopy{}
	for _, c := range final.all("COPY") {
		cp := parseCopy(t, c)
		if cp.from != "" {
			if _, ok := names[cp.from]; !ok {
				t.Errorf("line %d: COPY --from=%s: no such stage", c.line, cp.from)
			}
		} else {
			for _, s := range cp.srcs {
				if !fileExists(filepath.Join(root, s)) {
					t.Errorf("line %d: COPY %s: no such file in the repository", c.line, s)
				}
			}
		}
		copies[cp.dst] = cp
	}
	eps := final.all("ENTRYPOINT")
	if len(eps) != 1 {
		t.Fatalf("%d ENTRYPOINT in the final stage, want 1", len(eps))
	}
	ep := execForm(t, eps[0])
	if c, ok := copies[ep[0]]; !ok || c.from != build.name || len(c.srcs) != 1 || c.srcs[0] != out {
		t.Errorf("ENTRYPOINT %s is not the binary built at %s in stage %s", ep[0], out, build.name)
	}
	cmds := final.all("CMD")
	if len(cmds) != 1 {
		t.Fatalf("%d CMD in the final stage, want 1", len(cmds))
	}
	argv := append(ep[1:], execForm(t, cmds[0])...)
	if len(argv) != 3 || argv[0] != "serve" || argv[1] != "--config" {
		t.Fatalf("ENTRYPOINT+CMD %v: want serve --config FILE", argv)
	}
	cfgCopy, ok := copies[argv[2]]
	if !ok || cfgCopy.from != "" || len(cfgCopy.srcs) != 1 {
		t.Fatalf("--config %s is not a file copied from the repository", argv[2])
	}

	// The configuration it ships, with the image's environment, parses; ports and paths agree.
	imgEnv := map[string]string{}
	for _, e := range final.all("ENV") {
		k, v, ok := strings.Cut(e.args, "=")
		if !ok {
			t.Errorf("line %d: ENV %s: use the KEY=value form", e.line, e.args)
		}
		imgEnv[k] = v
	}
	checkEnvNames(t, "Dockerfile", imgEnv)
	cfg := parseDeployedConfig(t, "the image's configuration", readFile(t, filepath.Join(root, cfgCopy.srcs[0])), imgEnv)
	exposed := map[int]bool{}
	for _, e := range final.all("EXPOSE") {
		for _, p := range strings.Fields(e.args) {
			n, err := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
			if err != nil {
				t.Errorf("EXPOSE %s: not a TCP port", p)
			}
			exposed[n] = true
		}
	}
	want := map[int]bool{portOf(t, cfg.Listen.Addr): true, portOf(t, cfg.Admin.Addr): true}
	if len(exposed) != len(want) || !exposed[portOf(t, cfg.Listen.Addr)] || !exposed[portOf(t, cfg.Admin.Addr)] {
		t.Errorf("EXPOSE %v, the configuration listens on %v", exposed, want)
	}
	if h, _, _ := strings.Cut(cfg.Admin.Addr, ":"); h == "127.0.0.1" || h == "localhost" {
		t.Errorf("admin.addr %s in the image: probes and Prometheus cannot reach a loopback listener in a container", cfg.Admin.Addr)
	}
	workdirs := final.all("WORKDIR")
	if len(workdirs) == 0 {
		t.Fatal("no WORKDIR in the final stage: relative paths of the configuration would resolve under /")
	}
	wd := workdirs[len(workdirs)-1].args
	dataDir := cfg.DataDir
	if !path.IsAbs(dataDir) {
		dataDir = path.Join(wd, dataDir)
	}
	var volume []string
	for _, v := range final.all("VOLUME") {
		volume = append(volume, execForm(t, v)...)
	}
	inVolume := false
	for _, v := range volume {
		if dataDir == v || strings.HasPrefix(dataDir, v+"/") {
			inVolume = true
		}
	}
	if !inVolume {
		t.Errorf("data_dir %s is not on a VOLUME (%v)", dataDir, volume)
	}
	if c, ok := copies[wd]; !ok || !strings.HasPrefix(c.chown, uid+":") && c.chown != uid {
		t.Errorf("WORKDIR %s is not created owned by the runtime user %s (COPY --chown): the sidecar could not write data_dir", wd, uid)
	}
}

// TestDockerfileBuildsAStaticBinary runs the Dockerfile's own go build command line (with its
// environment) and checks that the result is a static ELF: no program interpreter, no shared
// libraries. No Docker engine is needed.
func TestDockerfileBuildsAStaticBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	root := testenv.ModuleRoot(t)
	stages := parseDockerfile(t, string(readFile(t, deployFile(t, "docker", "Dockerfile"))))
	var run dockerInstr
	for _, s := range stages {
		for _, r := range s.all("RUN") {
			if strings.Contains(r.args, "go build") {
				run = r
			}
		}
	}
	words := shellWords(run.args)
	env := os.Environ()
	var args []string
	for i, w := range words {
		if k, v, ok := strings.Cut(w, "="); ok && args == nil && w != "go" && !strings.HasPrefix(w, "-") && !strings.Contains(k, "/") {
			env = append(env, k+"="+v)
			continue
		}
		if w == "go" {
			args = words[i+1:]
			break
		}
	}
	bin := filepath.Join(t.TempDir(), "flowker-audit")
	for i, a := range args {
		args[i] = strings.NewReplacer("${VERSION}", "ops-test", "${COMMIT}", "0123456789abcdef0123456789abcdef01234567",
			"${BUILD_DATE}", "2026-12-07T00:00:00Z").Replace(a)
		if i > 0 && args[i-1] == "-o" {
			args[i] = bin
		}
	}
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Env = root, env
	if outp, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, outp)
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			t.Error("the binary has a program interpreter: it is dynamically linked")
		}
	}
	if libs, err := f.ImportedLibraries(); err == nil && len(libs) > 0 {
		t.Errorf("the binary needs shared libraries %v", libs)
	}
	v, err := exec.Command(bin, "version").Output()
	if err != nil || !strings.Contains(string(v), "ops-test") {
		t.Errorf("%s version: %v %s (the -X main.version of the Dockerfile did not apply)", bin, err, v)
	}
	if !strings.Contains(string(v), "commit:     0123456789abcdef0123456789abcdef01234567") || !strings.Contains(string(v), "built:      2026-12-07T00:00:00Z") {
		t.Errorf("%s version: %s (the Dockerfile's COMMIT and BUILD_DATE did not reach the binary)", bin, v)
	}
}
