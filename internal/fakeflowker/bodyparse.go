package fakeflowker

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"net/url"
	"reflect"
	"strings"
)

var errUnsupportedContentType = errors.New("unsupported content type")

// vendorContentType mirrors Fiber's utils.ParseVendorSpecificContentType:
// "application/vnd.api+json" becomes "application/json".
func vendorContentType(ct string) string {
	plus := strings.Index(ct, "+")
	if plus == -1 {
		return ct
	}

	var parsable string

	semi := strings.Index(ct, ";")

	switch {
	case semi == -1:
		parsable = ct[plus+1:]
	case plus < semi:
		parsable = ct[plus+1 : semi]
	default:
		return ct[:semi]
	}

	slash := strings.Index(ct, "/")
	if slash == -1 {
		return ct
	}

	return ct[:slash+1] + parsable
}

// bodyContentType is the media type Fiber's BodyParser dispatches on: the
// lower-cased Content-Type, vendor suffix resolved, cut at ';' (not trimmed).
func bodyContentType(contentType string) string {
	ct := vendorContentType(strings.ToLower(contentType))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}

	return ct
}

// parseBody mirrors Fiber v2's Ctx.BodyParser: the decoder is chosen from
// bodyContentType. out must be a pointer.
func parseBody(contentType string, body []byte, out any) error {
	ct := bodyContentType(contentType)

	switch {
	case strings.HasSuffix(ct, "json"):
		if err := json.Unmarshal(body, out); err != nil {
			return fmt.Errorf("decode json body: %w", err)
		}

		return nil
	case strings.HasPrefix(ct, "application/x-www-form-urlencoded"):
		// fasthttp's argument parser is lenient: keep whatever parsed.
		values, _ := url.ParseQuery(string(body))

		return fillForm(values, out)
	case strings.HasPrefix(ct, "multipart/form-data"):
		_, params, err := mime.ParseMediaType(contentType)
		if err != nil {
			return fmt.Errorf("parse multipart content type: %w", err)
		}

		form, err := multipart.NewReader(bytes.NewReader(body), params["boundary"]).ReadForm(maxBodySize)
		if err != nil {
			return fmt.Errorf("read multipart form: %w", err)
		}

		defer func() { _ = form.RemoveAll() }()

		return fillForm(form.Value, out)
	case strings.HasPrefix(ct, "text/xml"), strings.HasPrefix(ct, "application/xml"):
		if err := xml.Unmarshal(body, out); err != nil {
			return fmt.Errorf("failed to unmarshal: %w", err)
		}

		return nil
	default:
		return errUnsupportedContentType
	}
}

// fillForm sets the top-level string fields of the struct out points to,
// matching form keys to Go field names case-insensitively (gorilla/schema
// without a "form" tag). Anything but a struct pointer is an error.
func fillForm(values map[string][]string, out any) error {
	v := reflect.ValueOf(out)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return errors.New("schema: interface must be a pointer to struct")
	}

	v = v.Elem()
	t := v.Type()

	for key, vals := range values {
		if len(vals) == 0 {
			continue
		}

		for i := range t.NumField() {
			f := t.Field(i)
			if !f.IsExported() || !strings.EqualFold(f.Name, key) {
				continue
			}

			fv := v.Field(i)

			switch {
			case fv.Kind() == reflect.String:
				fv.SetString(vals[len(vals)-1])
			case fv.Kind() == reflect.Pointer && fv.Type().Elem().Kind() == reflect.String:
				s := vals[len(vals)-1]
				fv.Set(reflect.ValueOf(&s))
			}
		}
	}

	return nil
}
