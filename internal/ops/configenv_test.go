package ops

import (
	"errors"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/flowker-audit/flowker-audit/config"
	"github.com/flowker-audit/flowker-audit/plugins"
)

// configEnvNames returns every FLOWKER_AUDIT_* variable the configuration accepts: the scalar,
// duration, size and string-list keys (lists of structures and maps are file-only), named by
// config.EnvName from their key paths.
func configEnvNames() map[string]string {
	out := map[string]string{}
	durationType := reflect.TypeOf(config.Duration(0))
	sizeType := reflect.TypeOf(config.ByteSize(0))
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" {
				continue
			}
			p := tag
			if path != "" {
				p = path + "." + tag
			}
			ft := f.Type
			switch {
			case ft == durationType || ft == sizeType:
			case ft.Kind() == reflect.Struct:
				walk(ft, p)
				continue
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.String, ft.Kind() == reflect.Map, ft.Kind() == reflect.Pointer:
				continue
			}
			out[config.EnvName(p)] = p
		}
	}
	walk(reflect.TypeOf(config.Config{}), "")
	return out
}

// checkEnvNames fails for every FLOWKER_AUDIT_ variable in env that names no configuration key.
func checkEnvNames(t *testing.T, where string, env map[string]string) {
	t.Helper()
	known := configEnvNames()
	for name := range env {
		if !strings.HasPrefix(name, config.EnvPrefix) || name == config.EnvConfig {
			continue
		}
		if _, ok := known[name]; !ok {
			t.Errorf("%s: %s names no configuration key", where, name)
		}
	}
}

// parseDeployedConfig parses a configuration file as the sidecar would with env as its
// environment: config.Parse with the FLOWKER_AUDIT_ overrides and the bundled plugins'
// validation (which reads the other variables, such as password_env, from the process
// environment: they are set with t.Setenv).
func parseDeployedConfig(t *testing.T, where string, data []byte, env map[string]string) *config.Config {
	t.Helper()
	for k, v := range env {
		if !strings.HasPrefix(k, config.EnvPrefix) {
			t.Setenv(k, v)
		}
	}
	environ := make([]string, 0, len(env))
	for k, v := range env {
		environ = append(environ, k+"="+v)
	}
	cfg, err := config.Parse(data, config.Options{
		Lookup: func(k string) (string, bool) {
			v, ok := env[k]
			return v, ok
		},
		Environ: environ, // as the sidecar checks os.Environ(): a misspelt variable fails
		Plugins: plugins.Catalog{},
	})
	if err != nil {
		t.Fatalf("%s does not pass config.Parse: %v", where, err)
	}
	return cfg
}

// strictYAML decodes data into v, rejecting unknown keys (yaml.v3 KnownFields).
func strictYAML(data []byte, v any) error {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil {
		return err
	}
	var extra any
	if err := dec.Decode(&extra); err == nil {
		return errors.New("more than one YAML document")
	}
	return nil
}

// portOf returns the port of a host:port address (":4020" included).
func portOf(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func TestConfigEnvNamesMatchTheReference(t *testing.T) {
	// The names the README and config.yaml promise exist; a list or map does not.
	names := configEnvNames()
	for _, n := range []string{"FLOWKER_AUDIT_UPSTREAM_URL", "FLOWKER_AUDIT_LISTEN_ADDR", "FLOWKER_AUDIT_ADMIN_ADDR",
		"FLOWKER_AUDIT_AUTH_API_KEYS", "FLOWKER_AUDIT_WATCHER_API_KEY", "FLOWKER_AUDIT_IDENTITY_FINGERPRINT_KEY",
		"FLOWKER_AUDIT_AUTH_CURSOR_KEY", "FLOWKER_AUDIT_JOURNAL_MAX_BYTES", "FLOWKER_AUDIT_DATA_DIR", "FLOWKER_AUDIT_LOG_LEVEL"} {
		if _, ok := names[n]; !ok {
			t.Errorf("%s is not a configuration override", n)
		}
	}
	for _, n := range []string{"FLOWKER_AUDIT_SINKS", "FLOWKER_AUDIT_RULES", "FLOWKER_AUDIT_IDENTITY_API_KEY_NAMES", "FLOWKER_AUDIT_UPSTREAM_URI"} {
		if _, ok := names[n]; ok {
			t.Errorf("%s is listed as an override, but it is not one", n)
		}
	}
	// Every listed name really reaches its key: garbage is either rejected at that key (or the
	// structure holding it), or, for free-form strings, changes the parsed configuration.
	base, err := config.Parse([]byte("version: 1\n"), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, path := range names {
		cfg, err := config.Parse([]byte("version: 1\n"), config.Options{Lookup: func(k string) (string, bool) {
			return "garbage-\x01", k == name
		}})
		if err != nil {
			es, _ := config.IsErrors(err)
			hit := false
			for _, e := range es {
				if e.Path != "" && (strings.HasPrefix(path, e.Path) || strings.HasPrefix(e.Path, path+"[")) {
					hit = true
				}
			}
			if !hit {
				t.Errorf("%s=garbage: errors do not name %s: %v", name, path, err)
			}
			continue
		}
		if reflect.DeepEqual(cfg, base) {
			t.Errorf("%s=garbage changed nothing: it does not reach %s", name, path)
		}
	}
}
