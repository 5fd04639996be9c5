// Package pluginconfig decodes a sink plugin's `config:` block (JSON, as the host sends it) the
// same way for every plugin, bundled or external: defaults first, then the keys that are set,
// every problem reported with its key path (`tls.ca_file: ...`) instead of stopping at the
// first, unknown keys refused, null keeping a default.
//
// A plugin describes its configuration as a struct with `json` tags, fills it with defaults,
// calls Decode, adds its own checks to the same Problems, and returns Problems.Err:
//
//	cfg := Config{Path: "./data/audit.db", BusyTimeout: pluginconfig.Duration(5 * time.Second)}
//	var p pluginconfig.Problems
//	pluginconfig.Decode(raw, &cfg, &p)
//	if cfg.Path == "" {
//		p.Add("path", "must not be empty")
//	}
//	return cfg, p.Err("sqlite sink config")
package pluginconfig

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	Key     string // the key path, such as "tls.ca_file" or "addr[1]"; empty for the whole block
	Message string
}

func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Problems collects every problem of one configuration. The zero value is ready to use.
type Problems struct {
	list []Problem
}

// Add records a problem with key.
func (p *Problems) Add(key, format string, args ...any) {
	p.list = append(p.list, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// List returns the problems in the order they were found.
func (p *Problems) List() []Problem { return slices.Clone(p.list) }

// Err returns nil when there is no problem, otherwise an *Error naming what (for example
// "sqlite sink config") and every problem.
func (p *Problems) Err(what string) error {
	if len(p.list) == 0 {
		return nil
	}
	return &Error{What: what, Problems: p.List()}
}

// Error is a configuration with one or more problems. Its text lists them all, one per line.
type Error struct {
	What     string
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.What)
	b.WriteString(":")
	for _, p := range e.Problems {
		b.WriteString("\n")
		b.WriteString(p.String())
	}
	return b.String()
}

// Duration is a time.Duration written as a Go duration string ("250ms", "5s", "24h") or, in
// JSON, as a number of seconds. It is the one duration type of plugin and sidecar configuration.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// ParseDuration reads a duration string; negative durations are refused.
func ParseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("not a duration (use e.g. 500ms, 5s, 1h): %q", s)
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative: %q", s)
	}
	return Duration(v), nil
}

// UnmarshalJSON accepts "5s" or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := ParseDuration(s)
		if err != nil {
			return err
		}
		*d = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf(`must be a duration such as "5s" or a number of seconds, got %s`, b)
	}
	if n < 0 {
		return fmt.Errorf("must not be negative: %s", b)
	}
	*d = Duration(n * float64(time.Second))
	return nil
}

// UnmarshalText accepts "5s".
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText writes the Go duration string.
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Strings is a list of strings that may also be written as one string ("a" means ["a"]).
type Strings []string

// UnmarshalJSON accepts a string or a list of strings.
func (s *Strings) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = Strings{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("must be a string or a list of strings, got %s", b)
	}
	*s = many
	return nil
}

// Decode decodes raw (a JSON object; empty input or null keep every default) into dst, a pointer
// to a struct whose fields carry `json` tags, and adds every problem to p: a key that no field
// has (with the known keys), a value of the wrong type, and the same inside nested objects with
// their paths. A key set to null keeps its default. Keys match their tags exactly (unlike
// encoding/json, which also accepts other cases: a configuration is written by people and a
// near-miss must be reported, not guessed).
func Decode(raw []byte, dst any, p *Problems) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		panic("pluginconfig.Decode: dst must be a pointer to a struct")
	}
	decodeObject(raw, v.Elem(), "", p)
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func decodeObject(raw []byte, v reflect.Value, prefix string, p *Problems) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		p.Add(strings.TrimSuffix(prefix, "."), "must be a JSON object, got %s", describe(raw))
		return
	}
	byName := map[string]int{}
	var known []string
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if !f.IsExported() || name == "-" || name == "" {
			continue
		}
		byName[name] = i
		known = append(known, name)
	}
	slices.Sort(known)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		value := fields[k]
		i, ok := byName[k]
		if !ok {
			p.Add(prefix+k, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		if string(bytes.TrimSpace(value)) == "null" {
			continue
		}
		field := v.Field(i)
		pt := field.Addr().Type()
		if field.Kind() == reflect.Struct && !pt.Implements(jsonUnmarshaler) && !pt.Implements(textUnmarshaler) {
			decodeObject(value, field, prefix+k+".", p)
			continue
		}
		fresh := reflect.New(field.Type())
		if err := json.Unmarshal(value, fresh.Interface()); err != nil {
			p.Add(prefix+k, "%s", describeError(err, field.Type(), value))
			continue
		}
		field.Set(fresh.Elem())
	}
}

// describeError says what was wrong with value for a field of type t, without Go type names
// where a plain word says it better.
func describeError(err error, t reflect.Type, value []byte) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("must be %s, got %s", kindWord(t), describe(value))
	}
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		return "is not valid JSON: " + err.Error()
	}
	return err.Error()
}

func kindWord(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "a list of " + strings.TrimPrefix(kindWord(t.Elem()), "a ") + "s"
	case reflect.Map:
		return "an object of " + strings.TrimPrefix(kindWord(t.Elem()), "a ") + "s"
	}
	return "a " + t.Name()
}

// describe shortens a JSON value for an error message.
func describe(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}
