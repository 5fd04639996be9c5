package pluginconfig

import (
	"errors"
	"slices"
	"testing"
	"time"
)

type tlsConfig struct {
	Enabled bool   `json:"enabled"`
	CAFile  string `json:"ca_file"`
}

type testConfig struct {
	Path    string            `json:"path"`
	Timeout Duration          `json:"timeout"`
	Size    int               `json:"size"`
	Addr    Strings           `json:"addr"`
	Labels  map[string]string `json:"labels"`
	TLS     tlsConfig         `json:"tls"`
	hidden  string
}

func defaults() testConfig {
	return testConfig{Path: "./data", Timeout: Duration(5 * time.Second), Size: 64, Addr: Strings{"127.0.0.1:9000"}}
}

func TestDecode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		raw      string
		want     func(*testConfig)
		problems []string
	}{
		{name: "empty keeps defaults", raw: ``},
		{name: "null keeps defaults", raw: ` null `},
		{name: "empty object keeps defaults", raw: `{}`},
		{name: "null key keeps its default", raw: `{"path": null, "size": 8}`, want: func(c *testConfig) { c.Size = 8 }},
		{name: "values and nested object", raw: `{"path":"/x","timeout":"250ms","tls":{"enabled":true,"ca_file":"/ca.pem"},"labels":{"a":"b"}}`,
			want: func(c *testConfig) {
				c.Path, c.Timeout, c.TLS, c.Labels = "/x", Duration(250*time.Millisecond), tlsConfig{true, "/ca.pem"}, map[string]string{"a": "b"}
			}},
		{name: "duration as seconds", raw: `{"timeout": 1.5}`, want: func(c *testConfig) { c.Timeout = Duration(1500 * time.Millisecond) }},
		{name: "one string for a list", raw: `{"addr": "h:1"}`, want: func(c *testConfig) { c.Addr = Strings{"h:1"} }},
		{name: "a list", raw: `{"addr": ["h:1","h:2"]}`, want: func(c *testConfig) { c.Addr = Strings{"h:1", "h:2"} }},
		{name: "every problem with its path",
			raw: `{"pth":"/x","size":"big","timeout":"soon","tls":{"enabled":"yes","cafile":"x"},"addr":[1],"labels":[]}`,
			problems: []string{
				`addr: must be a string or a list of strings, got [1]`,
				`labels: must be an object of strings, got []`,
				`pth: unknown key (known: addr, labels, path, size, timeout, tls)`,
				`size: must be a whole number, got "big"`,
				`timeout: not a duration (use e.g. 500ms, 5s, 1h): "soon"`,
				`tls.cafile: unknown key (known: ca_file, enabled)`,
				`tls.enabled: must be true or false, got "yes"`,
			}},
		{name: "case must match", raw: `{"Path":"/x"}`, problems: []string{`Path: unknown key (known: addr, labels, path, size, timeout, tls)`}},
		{name: "unexported fields are not keys", raw: `{"hidden":"x"}`, problems: []string{`hidden: unknown key (known: addr, labels, path, size, timeout, tls)`}},
		{name: "not an object", raw: `[1,2]`, problems: []string{`must be a JSON object, got [1,2]`}},
		{name: "nested not an object", raw: `{"tls": 3}`, problems: []string{`tls: must be a JSON object, got 3`}},
		{name: "negative duration", raw: `{"timeout": -1}`, problems: []string{`timeout: must not be negative: -1`}},
		{name: "fraction for an int", raw: `{"size": 1.5}`, problems: []string{`size: must be a whole number, got 1.5`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := defaults()
			var p Problems
			Decode([]byte(tc.raw), &got, &p)
			var msgs []string
			for _, pr := range p.List() {
				msgs = append(msgs, pr.String())
			}
			if !slices.Equal(msgs, tc.problems) {
				t.Fatalf("problems\n%q\nwant\n%q", msgs, tc.problems)
			}
			if got.hidden != "" {
				t.Fatalf("an unexported field was set: %q", got.hidden)
			}
			if tc.problems != nil {
				return
			}
			want := defaults()
			if tc.want != nil {
				tc.want(&want)
			}
			if got.Path != want.Path || got.Timeout != want.Timeout || got.Size != want.Size || !slices.Equal(got.Addr, want.Addr) ||
				got.TLS != want.TLS || len(got.Labels) != len(want.Labels) || got.Labels["a"] != want.Labels["a"] {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestErr(t *testing.T) {
	var p Problems
	if p.Err("x") != nil {
		t.Fatal("no problems must give a nil error")
	}
	p.Add("path", "must not be empty")
	p.Add("", "the whole block is wrong")
	err := p.Err("demo sink config")
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("%v", err)
	}
	if want := "demo sink config:\npath: must not be empty\nthe whole block is wrong"; err.Error() != want {
		t.Fatalf("%q\nwant %q", err.Error(), want)
	}
}

func TestDurationText(t *testing.T) {
	var d Duration
	if err := d.UnmarshalText([]byte("90s")); err != nil || d.D() != 90*time.Second || d.String() != "1m30s" {
		t.Fatalf("%v %v", d, err)
	}
	if b, _ := d.MarshalText(); string(b) != "1m30s" {
		t.Fatalf("%s", b)
	}
	if err := d.UnmarshalText([]byte("-1s")); err == nil {
		t.Fatal("negative accepted")
	}
}
