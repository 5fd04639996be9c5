package capture

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// flowkerWorkflow mirrors the fields of Flowker's model.CreateWorkflowInput and
// model.CreateWorkflowFromTemplateInput that the built-in rules read.
type flowkerInput struct {
	Name       string         `json:"name"`
	TemplateID string         `json:"templateId"`
	Params     map[string]any `json:"params"`
	Nested     struct {
		Label string `json:"label"`
	} `json:"nested"`
}

// decodeGo is what Flowker's decoder (json.Unmarshal, as Fiber's BodyParser calls it) stores.
func decodeGo(body []byte) (flowkerInput, error) {
	var in flowkerInput
	err := json.Unmarshal(body, &in)
	return in, err
}

func TestDecodeFollowsEncodingJSON(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		path       []Seg
		want       string
		found      bool
	}{
		{"duplicate: last wins", `{"name":"AUDIT-SEES-THIS","name":"FLOWKER-STORES-THIS"}`, Segs("name"), "FLOWKER-STORES-THIS", true},
		{"case collision: last wins", `{"name":"a","NAME":"b"}`, Segs("name"), "b", true},
		{"case only", `{"NaMe":"b"}`, Segs("name"), "b", true},
		{"escaped key", `{"n\u0061me":"esc","x":1}`, Segs("name"), "esc", true},
		{"escaped value", `{"name":"a\u0020\"b\"\n"}`, Segs("name"), "a \"b\"\n", true},
		{"no trimming", `{"name":"  pc-1  "}`, Segs("name"), "  pc-1  ", true},
		{"null keeps the earlier value of a struct field", `{"name":"kept","name":null}`, Segs("name"), "kept", true},
		{"kelvin sign folds to k", `{"wor\u212aflow":"v"}`, Segs("workflow"), "v", true},
		{"long s folds to s", `{"\u017Fx":"v"}`, Segs("sx"), "v", true},
		{"map key is exact", `{"params":{"WorkflowName":"no","workflowName":"yes","WORKFLOWNAME":"no"}}`, []Seg{{Name: "params"}, {Name: "workflowName", Exact: true}}, "yes", true},
		{"map null deletes", `{"params":{"workflowName":"a","workflowName":null}}`, []Seg{{Name: "params"}, {Name: "workflowName", Exact: true}}, "", false},
		{"maps merge across duplicates", `{"params":{"workflowName":"a"},"Params":{"other":1}}`, []Seg{{Name: "params"}, {Name: "workflowName", Exact: true}}, "a", true},
		{"map set to null loses entries", `{"params":{"workflowName":"a"},"params":null}`, []Seg{{Name: "params"}, {Name: "workflowName", Exact: true}}, "", false},
		{"structs merge", `{"nested":{"label":"a"},"NESTED":{"x":1}}`, Segs("nested", "label"), "a", true},
		{"absent", `{"x":"y"}`, Segs("name"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Decode([]byte(tc.body), tc.path)
			if v.Text != tc.want || v.Found != tc.found {
				t.Fatalf("Decode = %+v, want %q found=%v", v, tc.want, tc.found)
			}
			in, err := decodeGo([]byte(tc.body))
			if err != nil {
				t.Fatalf("encoding/json: %v", err)
			}
			if got := goValue(in, tc.path); got != tc.want && len(tc.path) > 0 && tc.path[0].Name != "workflow" && tc.path[0].Name != "sx" {
				t.Fatalf("encoding/json stored %q, Decode says %q", got, tc.want)
			}
		})
	}
}

func goValue(in flowkerInput, path []Seg) string {
	switch {
	case len(path) == 1 && path[0].Name == "name":
		return in.Name
	case len(path) == 1 && path[0].Name == "templateId":
		return in.TemplateID
	case len(path) == 2 && path[0].Name == "params":
		if s, ok := in.Params[path[1].Name].(string); ok {
			return s
		}
		return ""
	case len(path) == 2 && path[0].Name == "nested":
		return in.Nested.Label
	}
	return ""
}

func TestAmbiguousKeys(t *testing.T) {
	got := AmbiguousKeys([]byte(`{"name":"a","Name":"b","x":{"k":1,"k":2,"K":3},"l":[{"a":1,"A":2}],"ok":1}`), 16)
	want := []string{"Name", "x.k", "l.*.A"} // the member that repeats an earlier key
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("AmbiguousKeys = %q, want %q", got, want)
	}
	if got := AmbiguousKeys([]byte(`{"name":"a","names":"b"}`), 16); got != nil {
		t.Fatalf("no ambiguity: %q", got)
	}
}

func TestFiberBodyKind(t *testing.T) {
	for ct, want := range map[string]BodyKind{
		"application/json": BodyJSON, "Application/JSON; charset=utf-8": BodyJSON, "application/vnd.api+json": BodyJSON,
		"text/json": BodyJSON, "application/json ;charset=utf-8": BodyNone, "application/x-www-form-urlencoded": BodyForm,
		"application/x-www-form-urlencoded; charset=utf-8": BodyForm, "multipart/form-data; boundary=x": BodyMultipart,
		"text/xml": BodyXML, "text/plain": BodyNone, "": BodyNone, "application/problem+json; x=y": BodyJSON,
	} {
		if got := FiberBodyKind(ct); got != want {
			t.Errorf("FiberBodyKind(%q) = %v, want %v", ct, got, want)
		}
	}
}

func TestFormValue(t *testing.T) {
	const ct = "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		body, ct, want string
		found, amb     bool
	}{
		{"name=a&name=b", ct, "b", true, false},
		{"Name=%20x+y%20", ct, " x y ", true, false},
		{"name=a&NAME=b", ct, "", false, true},
		{"name[x]=a", ct, "", false, true},
		{"other=1", ct, "", false, false},
		{"name=a", "Application/X-WWW-Form-Urlencoded", "", false, false}, // fasthttp reads no arguments
	} {
		v, amb := FormValue([]byte(tc.body), tc.ct, "name")
		if v.Text != tc.want || v.Found != tc.found || amb != tc.amb {
			t.Errorf("FormValue(%q, %q) = %+v ambiguous=%v", tc.body, tc.ct, v, amb)
		}
	}
}

// FuzzDecodeAgainstEncodingJSON: for any body encoding/json accepts into Flowker's input struct,
// Decode reads the value json.Unmarshal stored.
func FuzzDecodeAgainstEncodingJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"a","name":"b"}`, `{"NAME":"x","name":null}`, `{"n\u0061me":"\ud800"}`, `{"params":{"workflowName":"w"},"params":{"x":1}}`,
		`{"params":null}`, `{"templateId":"t","TEMPLATEID":"u"}`, `{"nested":{"label":"l"},"nested":{"LABEL":"m"}}`, `{"name":"\u0000"}`,
		`{"name":"a\xffb"}`, `{"wor\u212aflow":1}`, `[]`, `null`,
	} {
		f.Add([]byte(s))
	}
	paths := [][]Seg{Segs("name"), Segs("templateId"), {{Name: "params"}, {Name: "workflowName", Exact: true}}, Segs("nested", "label")}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := decodeGo(body)
		if err != nil {
			return // Flowker answers 400: nothing is stored, nothing needs to agree
		}
		for _, p := range paths {
			v := Decode(body, p)
			want := goValue(in, p)
			if p[0].Name == "params" {
				if _, isString := in.Params[p[1].Name].(string); !isString && in.Params[p[1].Name] != nil {
					continue // a number or bool in the map: kept as written, not as Go formats it
				}
			}
			if v.Text != want {
				t.Fatalf("%s: Decode = %q, encoding/json stored %q (body %q)", p[len(p)-1].Name, v.Text, want, body)
			}
		}
	})
}

func TestDecodePrefixReadsIDsFromACutCapture(t *testing.T) {
	full := `{"workflowId":"c5160020-5d68-4a05-b984-cef31de6428a","name":"n","pad":"` + strings.Repeat("x", 100) + `"}`
	cut := []byte(full[:80])
	if v := DecodePrefix(cut, Segs("workflowId")); v.Text != "c5160020-5d68-4a05-b984-cef31de6428a" {
		t.Fatalf("id from prefix: %+v", v)
	}
	if v := DecodePrefix([]byte(full[:20]), Segs("workflowId")); v.Found {
		t.Fatalf("a value cut by the end must not be read: %+v", v)
	}
}
