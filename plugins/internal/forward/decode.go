package forward

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
)

// Problems collects configuration problems, each naming its key path.
type Problems []error

// Add records a problem with the key path key.
func (p *Problems) Add(key, format string, args ...any) {
	*p = append(*p, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

// Err joins the problems (nil when there are none).
func (p Problems) Err() error { return errors.Join(p...) }

// Decode decodes the JSON object raw into the struct dst strictly: every key must match a
// field's json tag (nested structs are decoded the same way, their keys named "outer.inner"),
// and every unknown key or value of the wrong type is reported with its path. Empty raw (or
// null) leaves dst as it is.
func Decode(raw []byte, dst any) Problems {
	var p Problems
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	decodeStruct(raw, reflect.ValueOf(dst).Elem(), "", &p)
	return p
}

func decodeStruct(raw []byte, v reflect.Value, prefix string, p *Problems) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		where := strings.TrimSuffix(prefix, ".")
		if where == "" {
			where = "config"
		}
		p.Add(where, "must be an object")
		return
	}
	fields := map[string]int{}
	t := v.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			fields[name] = i
		}
	}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		path := prefix + k
		i, ok := fields[k]
		if !ok {
			known := make([]string, 0, len(fields))
			for n := range fields {
				known = append(known, n)
			}
			sort.Strings(known)
			p.Add(path, "unknown key (known: %s)", strings.Join(known, ", "))
			continue
		}
		f := v.Field(i)
		if f.Kind() == reflect.Struct && f.Type() != reflect.TypeFor[Duration]() {
			decodeStruct(obj[k], f, path+".", p)
			continue
		}
		if err := json.Unmarshal(obj[k], f.Addr().Interface()); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				p.Add(path, "want %s, got a JSON %s", kindName(f.Type()), te.Value)
			} else {
				p.Add(path, "%v", err)
			}
		}
	}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint64, reflect.Uint32:
		return "an integer"
	case reflect.Map:
		return "an object"
	case reflect.Slice:
		return "a list"
	}
	return t.String()
}

// Duration is a time.Duration that decodes from a Go duration string ("5s") or a number of
// seconds.
type Duration time.Duration

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("%q is not a duration such as 5s or 1m", s)
		}
		*d = Duration(v)
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("want a duration such as \"5s\" or a number of seconds, got %s", b)
	}
	*d = Duration(n * float64(time.Second))
	return nil
}
