package fakeflowker

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// jsonSchema is the JSON-Schema subset the fake enforces.
type jsonSchema struct {
	Type                 string                 `json:"type"`
	Required             []string               `json:"required"`
	Properties           map[string]*jsonSchema `json:"properties"`
	AdditionalProperties json.RawMessage        `json:"additionalProperties"`
	Items                *jsonSchema            `json:"items"`
	MinLength            *int                   `json:"minLength"`
	MaxLength            *int                   `json:"maxLength"`
	Minimum              *float64               `json:"minimum"`
	Maximum              *float64               `json:"maximum"`
	Enum                 []any                  `json:"enum"`
}

func mustSchema(src string) *jsonSchema {
	var s jsonSchema
	if err := json.Unmarshal([]byte(src), &s); err != nil {
		panic(fmt.Sprintf("fakeflowker: invalid built-in schema: %v", err))
	}

	return &s
}

// validateSchema returns nil or an error worded like santhosh-tekuri/jsonschema.
func validateSchema(s *jsonSchema, resource string, v any) error {
	var problems []string

	s.check("", v, &problems)

	if len(problems) == 0 {
		return nil
	}

	return fmt.Errorf("jsonschema validation failed with '%s#'\n- %s", resource, strings.Join(problems, "\n- "))
}

func jsonTypeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case float64:
		if x == math.Trunc(x) {
			return "integer"
		}

		return "number"
	case json.Number:
		if strings.ContainsAny(x.String(), ".eE") {
			return "number"
		}

		return "integer"
	case int, int64:
		return "integer"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	default:
		return "unknown"
	}
}

func (s *jsonSchema) check(at string, v any, problems *[]string) {
	got := jsonTypeOf(v)

	if s.Type != "" {
		ok := got == s.Type || (s.Type == "number" && got == "integer")
		if !ok {
			*problems = append(*problems, fmt.Sprintf("at '%s': got %s, want %s", at, got, s.Type))
			return
		}
	}

	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		*problems = append(*problems, fmt.Sprintf("at '%s': value must be one of %v", at, s.Enum))
	}

	switch x := v.(type) {
	case string:
		n := utf8.RuneCountInString(x)
		if s.MinLength != nil && n < *s.MinLength {
			*problems = append(*problems, fmt.Sprintf("at '%s': minLength: got %d, want %d", at, n, *s.MinLength))
		}

		if s.MaxLength != nil && n > *s.MaxLength {
			*problems = append(*problems, fmt.Sprintf("at '%s': maxLength: got %d, want %d", at, n, *s.MaxLength))
		}
	case float64:
		if s.Minimum != nil && x < *s.Minimum {
			*problems = append(*problems, fmt.Sprintf("at '%s': minimum: got %v, want %v", at, x, *s.Minimum))
		}

		if s.Maximum != nil && x > *s.Maximum {
			*problems = append(*problems, fmt.Sprintf("at '%s': maximum: got %v, want %v", at, x, *s.Maximum))
		}
	case []any:
		if s.Items != nil {
			for i, e := range x {
				s.Items.check(fmt.Sprintf("%s/%d", at, i), e, problems)
			}
		}
	case map[string]any:
		s.checkObject(at, x, problems)
	}
}

func (s *jsonSchema) checkObject(at string, x map[string]any, problems *[]string) {
	var missing []string

	for _, r := range s.Required {
		if _, ok := x[r]; !ok {
			missing = append(missing, "'"+r+"'")
		}
	}

	if len(missing) == 1 {
		*problems = append(*problems, fmt.Sprintf("at '%s': missing property %s", at, missing[0]))
	} else if len(missing) > 1 {
		*problems = append(*problems, fmt.Sprintf("at '%s': missing properties %s", at, strings.Join(missing, ", ")))
	}

	keys := make([]string, 0, len(x))
	for k := range x {
		keys = append(keys, k)
	}

	sort.Strings(keys)

	var extra *jsonSchema

	forbidExtra := false

	if len(s.AdditionalProperties) > 0 {
		if string(s.AdditionalProperties) == "false" {
			forbidExtra = true
		} else if string(s.AdditionalProperties) != "true" {
			extra = &jsonSchema{}
			if err := json.Unmarshal(s.AdditionalProperties, extra); err != nil {
				extra = nil
			}
		}
	}

	var unknown []string

	for _, k := range keys {
		child := at + "/" + k

		if ps, ok := s.Properties[k]; ok {
			ps.check(child, x[k], problems)
			continue
		}

		switch {
		case forbidExtra:
			unknown = append(unknown, "'"+k+"'")
		case extra != nil:
			extra.check(child, x[k], problems)
		}
	}

	if len(unknown) > 0 {
		*problems = append(*problems, fmt.Sprintf("at '%s': additional properties %s not allowed", at, strings.Join(unknown, ", ")))
	}
}
