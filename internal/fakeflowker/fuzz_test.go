package fakeflowker

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzDecodeCursor(f *testing.F) {
	f.Add(encodeCursor(cursor{ID: "caf35113-eb96-46db-9864-57c07b54371c", SortValue: "2026-11-23T01:08:01.290Z", SortBy: "createdAt", SortOrder: "ASC", PointsNext: true}))
	f.Add("eyJpZCI6IngifQ==")
	f.Add("!!!")
	f.Add("")

	f.Fuzz(func(t *testing.T, s string) {
		c, err := decodeCursor(s)
		if err != nil {
			return
		}

		// A decoded cursor re-encodes to a cursor that decodes to the same value.
		again, err := decodeCursor(encodeCursor(c))
		if err != nil || again != c {
			t.Fatalf("round trip of %+v: %+v, %v", c, again, err)
		}

		if _, err := parseTimeCursorValue(c.SortValue, true); err == nil && c.SortValue != "" {
			if _, err := parseTimeCursorValue(c.SortValue, false); err != nil {
				t.Fatalf("non-empty value accepted only when empty is allowed: %q", c.SortValue)
			}
		}
	})
}

func FuzzRouteMatch(f *testing.F) {
	for _, p := range []string{"/v1/workflows", "/V1/Workflows/", "//v1/workflows", "/v1/webhooks/a/b/", "/v1/workflows/x/activate", "/", "", "///", "/v1/executions/%7Bx%7D/results"} {
		f.Add("GET", p)
		f.Add("POST", p)
	}

	srv := New(Options{})
	f.Cleanup(srv.Close)

	f.Fuzz(func(t *testing.T, method, raw string) {
		if !isKnownMethod(method) || strings.ContainsAny(raw, "?#") {
			return
		}

		detection := detectionPath(raw)
		if len(detection) > len(raw) || (len(detection) > 1 && strings.HasSuffix(detection, "/")) {
			t.Fatalf("detection path %q of %q", detection, raw)
		}

		if strings.ContainsAny(detection, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") {
			t.Fatalf("detection path %q is not ASCII lower-case", detection)
		}

		rt, params, allow := srv.match(method, detection, raw)
		if rt != nil && len(allow) > 0 {
			t.Fatal("matched route and Allow list at the same time")
		}

		for name, v := range params {
			if name != "*" && (v == "" || strings.Contains(v, "/")) {
				t.Fatalf("param %s = %q for %q", name, v, raw)
			}

			if !strings.Contains(raw, v) {
				t.Fatalf("param %s = %q is not raw text of %q", name, v, raw)
			}
		}
	})
}

func FuzzParseBody(f *testing.F) {
	f.Add("application/json", []byte(`{"name":"a","nodes":[{"id":"x","position":{"x":1,"y":2}}]}`))
	f.Add("application/x-www-form-urlencoded", []byte(`name=a&description=b`))
	f.Add("multipart/form-data; boundary=x", []byte("--x\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nv\r\n--x--\r\n"))
	f.Add("application/xml", []byte(`<a><Name>x</Name></a>`))
	f.Add("text/plain", []byte(`{}`))

	f.Fuzz(func(t *testing.T, ctype string, body []byte) {
		var in workflowInput
		if err := parseBody(ctype, body, &in); err == nil {
			if _, err := json.Marshal(in); err != nil {
				t.Fatalf("decoded input does not encode: %v", err)
			}
		}

		ct := bodyContentType(ctype)
		isForm := strings.HasPrefix(ct, "application/x-www-form-urlencoded") || strings.HasPrefix(ct, "multipart/form-data")

		var m map[string]any
		if err := parseBody(ctype, body, &m); err == nil && isForm && !strings.HasSuffix(ct, "json") {
			t.Fatalf("form body decoded into a map for %q", ctype)
		}
	})
}
