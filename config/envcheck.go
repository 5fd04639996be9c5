package config

import (
	"reflect"
	"sort"
	"strings"
)

// EnvConfig names the configuration file when no --config flag is given.
const EnvConfig = EnvPrefix + "CONFIG"

// toolingEnv are FLOWKER_AUDIT_* variables that are not configuration keys: the config path, the
// plugin handshake, and what the tests and benchmarks read. They are never reported as unknown.
var toolingEnv = map[string]bool{
	EnvConfig:                         true,
	EnvPrefix + "SINK_PLUGIN":         true, // go-plugin magic cookie (sink.MagicCookieKey)
	EnvPrefix + "BIN":                 true,
	EnvPrefix + "UI_TIMING":           true,
	EnvPrefix + "SCREENSHOT":          true,
	EnvPrefix + "UPDATE_SCREENSHOT":   true,
	EnvPrefix + "CHDB_DIR":            true,
	EnvPrefix + "CLICKHOUSE_SERVER":   true,
	EnvPrefix + "SINK_TEST_PLUGIN":    true,
	EnvPrefix + "HOST_TEST_PLUGIN":    true,
	EnvPrefix + "IMPORT_POSTGRES_URL": true, // flowker-audit import flowker --postgres-url
}

// toolingPrefixes start variable names the tests and benchmarks own (FLOWKER_AUDIT_TEST_LOG,
// FLOWKER_AUDIT_BENCH_EVENTS, FLOWKER_AUDIT_SKIP_CLICKHOUSE, ...).
var toolingPrefixes = []string{EnvPrefix + "TEST_", EnvPrefix + "BENCH_", EnvPrefix + "SKIP_"}

// envNames returns every FLOWKER_AUDIT_* variable that overrides a configuration key, with the
// key's dotted path (scalars, durations, sizes and string lists), and the names the file-only
// keys (lists of structures, maps) would have.
func envNames() (overrides, fileOnly map[string]string) {
	overrides, fileOnly = map[string]string{}, map[string]string{}
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := 0; i < t.NumField(); i++ {
			ft := t.Field(i).Type
			p := join(path, tagName(t.Field(i)))
			switch {
			case ft == durationType || ft == byteSizeType:
			case ft.Kind() == reflect.Struct:
				walk(ft, p)
				continue
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.String,
				ft.Kind() == reflect.Map, ft.Kind() == reflect.Pointer:
				fileOnly[EnvName(p)] = p
				continue
			}
			overrides[EnvName(p)] = p
		}
	}
	walk(reflect.TypeFor[Config](), "")
	return overrides, fileOnly
}

// checkEnvNames reports every FLOWKER_AUDIT_* variable in environ (KEY=VALUE entries) that is
// neither a configuration override, nor a variable a sink's *_env key names, nor one of the
// tooling variables, naming the closest known override: a misspelt variable is an error, not a
// silently ignored setting.
func checkEnvNames(cfg *Config, environ []string) Errors {
	known, fileOnly := envNames()
	referenced := map[string]bool{}
	for _, s := range cfg.Sinks {
		for k, v := range s.Config {
			if name, ok := v.(string); ok && strings.HasSuffix(k, "_env") {
				referenced[name] = true
			}
		}
	}
	candidates := make([]string, 0, len(known)+1)
	for n := range known {
		candidates = append(candidates, n)
	}
	candidates = append(candidates, EnvConfig)
	sort.Strings(candidates)
	var errs Errors
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || seen[name] {
			continue
		}
		seen[name] = true
		if _, ok := known[name]; ok || referenced[name] || toolingEnv[name] || hasAnyPrefix(name, toolingPrefixes) {
			continue
		}
		if p, ok := fileOnly[name]; ok {
			errs.add("", "environment variable %s is not a configuration override: %s is set in the configuration file only", name, p)
			continue
		}
		errs.add("", "environment variable %s is not a configuration override (did you mean %s?)", name, closest(name, candidates))
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Msg < errs[j].Msg })
	return errs
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// closest returns the candidate with the smallest edit distance to name (the first in order on
// a tie).
func closest(name string, candidates []string) string {
	best, bestD := "", -1
	for _, c := range candidates {
		if d := editDistance(name, c); bestD < 0 || d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b (bytes; the names are ASCII).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
