package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// FieldError is one configuration problem at a field path.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Errors is every problem found, in the order found.
type Errors []FieldError

func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return fmt.Sprintf("%d configuration problem(s):\n  %s", len(es), strings.Join(lines, "\n  "))
}

func (es *Errors) add(path, format string, args ...any) {
	*es = append(*es, FieldError{Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Options tune Load and Parse.
type Options struct {
	// Lookup reads environment overrides; nil means os.LookupEnv for Load and no overrides for Parse.
	Lookup func(string) (string, bool)
	// Environ is the environment as KEY=VALUE entries, checked for FLOWKER_AUDIT_* variables that
	// override nothing (a misspelt name is an error naming the closest known one). nil: no check,
	// except in Load with a nil Lookup, which checks os.Environ().
	Environ []string
	// Plugins, when set, names the sink plugins bundled in the binary and validates their config
	// blocks (package plugins' Catalog is the one source of truth). Without it, plugin names
	// and their config blocks are not checked.
	Plugins PluginCatalog
}

// PluginCatalog is what configuration checks need to know of the bundled sink plugins.
type PluginCatalog interface {
	// Bundled returns the names of the bundled plugins, sorted.
	Bundled() []string
	// ValidateConfig checks the config block of a bundled plugin; known is false for a plugin that
	// is not bundled (an external binary checks its own when it starts).
	ValidateConfig(plugin string, config []byte) (known bool, err error)
	// Queryable reports whether a bundled plugin can answer the audit API (query: true);
	// write-only plugins archive or forward events and cannot read them back.
	Queryable(plugin string) bool
}

// Load builds the configuration from the defaults, the YAML file at path and the environment,
// then validates it. The error, when not nil, is an Errors listing every problem.
func Load(path string, opts Options) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Errors{{Msg: fmt.Sprintf("reading configuration: %v", err)}}
	}
	if opts.Lookup == nil {
		opts.Lookup = os.LookupEnv
		if opts.Environ == nil {
			opts.Environ = os.Environ()
		}
	}
	return Parse(data, opts)
}

// defaultSQLitePaths puts the store of a SQLite sink that names no path in data_dir (as it
// stands after the environment overrides), beside the journal: audit.db, and access-events.db
// for the access trail (whose default sink it adds when access events are on and name no sink).
func defaultSQLitePaths(cfg *Config) {
	setPaths := func(sinks []Sink, file string) {
		for i := range sinks {
			s := &sinks[i]
			if s.Plugin != "sqlite" {
				continue
			}
			if s.Config == nil {
				s.Config = map[string]any{}
			}
			if _, ok := s.Config["path"]; !ok {
				s.Config["path"] = filepath.Join(cfg.DataDir, file)
			}
		}
	}
	setPaths(cfg.Sinks, "audit.db")
	if cfg.AccessEvents.Enabled && len(cfg.AccessEvents.Sinks) == 0 {
		cfg.AccessEvents.Sinks = []Sink{{Name: "access", Plugin: "sqlite", Query: true}}
	}
	setPaths(cfg.AccessEvents.Sinks, "access-events.db")
}

// Parse is Load for a configuration held in memory.
func Parse(data []byte, opts Options) (*Config, error) {
	cfg := Default()
	errs := decodeYAML(data, cfg)
	lookup := opts.Lookup
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	errs = append(errs, applyEnv(cfg, lookup)...)
	if opts.Environ != nil {
		errs = append(errs, checkEnvNames(cfg, opts.Environ)...)
	}
	defaultSQLitePaths(cfg)
	errs = append(errs, Validate(cfg, opts.Plugins)...)
	if len(errs) > 0 {
		return cfg, errs
	}
	return cfg, nil
}

func decodeYAML(data []byte, cfg *Config) Errors {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return Errors{{Msg: fmt.Sprintf("invalid YAML: %v", err)}}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil // empty file: defaults only
	}
	var errs Errors
	decodeNode(root.Content[0], reflect.ValueOf(cfg).Elem(), "", &errs)
	return errs
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

var (
	durationType = reflect.TypeFor[Duration]()
	byteSizeType = reflect.TypeFor[ByteSize]()
)

// decodeNode decodes n into v, reporting problems with their field paths instead of stopping.
func decodeNode(n *yaml.Node, v reflect.Value, path string, errs *Errors) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "key:" with no value keeps the default
	}
	switch v.Type() {
	case durationType:
		if n.Kind != yaml.ScalarNode {
			errs.add(path, "expected a duration such as 5s")
			return
		}
		d, err := parseDuration(n.Value)
		if err != nil {
			errs.add(path, "%v", err)
			return
		}
		v.SetInt(int64(d))
		return
	case byteSizeType:
		if n.Kind != yaml.ScalarNode {
			errs.add(path, "expected a size such as 64KiB")
			return
		}
		b, err := parseByteSize(n.Value)
		if err != nil {
			errs.add(path, "%v", err)
			return
		}
		v.SetInt(int64(b))
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			errs.add(path, "expected a mapping (key: value pairs), got %s", kindName(n))
			return
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			p := join(path, key)
			if seen[key] {
				errs.add(p, "defined more than once")
				continue
			}
			seen[key] = true
			f, ok := fieldByTag(v, key)
			if !ok {
				errs.add(p, "unknown key (known keys: %s)", strings.Join(knownKeys(v.Type()), ", "))
				continue
			}
			decodeNode(n.Content[i+1], f, p, errs)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			errs.add(path, "expected a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			decodeNode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i), errs)
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			errs.add(path, "expected a mapping, got %s", kindName(n))
			return
		}
		if v.Type().Elem().Kind() == reflect.Interface {
			var m map[string]any
			if err := n.Decode(&m); err != nil {
				errs.add(path, "%v", err)
				return
			}
			v.Set(reflect.ValueOf(m))
			return
		}
		m := reflect.MakeMap(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			key := n.Content[i].Value
			ev := reflect.New(v.Type().Elem()).Elem()
			decodeNode(n.Content[i+1], ev, join(path, key), errs)
			m.SetMapIndex(reflect.ValueOf(key), ev)
		}
		v.Set(m)
	case reflect.Pointer:
		ev := reflect.New(v.Type().Elem())
		decodeNode(n, ev.Elem(), path, errs)
		v.Set(ev)
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64:
		if n.Kind != yaml.ScalarNode {
			errs.add(path, "expected a %s, got %s", v.Kind(), kindName(n))
			return
		}
		if err := setScalar(v, n.Value, n.Tag); err != nil {
			errs.add(path, "%v", err)
		}
	default:
		errs.add(path, "unsupported field type %s", v.Type())
	}
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	default:
		return fmt.Sprintf("%q", n.Value)
	}
}

func setScalar(v reflect.Value, s, tag string) error {
	switch v.Kind() {
	case reflect.String:
		if tag != "" && tag != "!!str" && tag != "!!int" && tag != "!!float" && tag != "!!bool" {
			return fmt.Errorf("expected a string, got %s", tag)
		}
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("expected true or false, got %q", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		i, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			return fmt.Errorf("expected an integer, got %q", s)
		}
		v.SetInt(i)
	}
	return nil
}

func fieldByTag(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		if tagName(t.Field(i)) == key {
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

func knownKeys(t reflect.Type) []string {
	keys := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, tagName(t.Field(i)))
	}
	sort.Strings(keys)
	return keys
}

// EnvPrefix starts every environment override.
const EnvPrefix = "FLOWKER_AUDIT_"

// EnvName returns the environment variable that overrides the dotted key path.
func EnvName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(path))
}

// applyEnv overrides every scalar, duration, size and string-list field found in the environment.
// Lists of structures (rules, sinks) and maps are configured in the file only.
func applyEnv(cfg *Config, lookup func(string) (string, bool)) Errors {
	var errs Errors
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := v.Field(i)
			p := join(path, tagName(t.Field(i)))
			ft := f.Type()
			switch {
			case ft == durationType || ft == byteSizeType:
			case ft.Kind() == reflect.Struct:
				walk(f, p)
				continue
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() != reflect.String,
				ft.Kind() == reflect.Map, ft.Kind() == reflect.Pointer:
				continue
			}
			name := EnvName(p)
			s, ok := lookup(name)
			if !ok {
				continue
			}
			var err error
			switch {
			case ft == durationType:
				var d Duration
				if d, err = parseDuration(s); err == nil {
					f.SetInt(int64(d))
				}
			case ft == byteSizeType:
				var b ByteSize
				if b, err = parseByteSize(s); err == nil {
					f.SetInt(int64(b))
				}
			case ft.Kind() == reflect.Slice:
				var items []string
				for _, item := range strings.Split(s, ",") {
					if item = strings.TrimSpace(item); item != "" {
						items = append(items, item)
					}
				}
				f.Set(reflect.ValueOf(items))
			default:
				err = setScalar(f, s, "")
			}
			if err != nil {
				errs.add(p, "from %s: %v", name, err)
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "")
	return errs
}

// IsErrors reports whether err is a list of configuration problems and returns it.
func IsErrors(err error) (Errors, bool) {
	var es Errors
	ok := errors.As(err, &es)
	return es, ok
}
