package capture

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/valyala/fasthttp"
)

// BodyKind is how Flowker's framework (Fiber v2's BodyParser) binds a request body.
type BodyKind int

// Body kinds.
const (
	BodyNone      BodyKind = iota // Fiber refuses the content type: Flowker answers 400 and binds nothing
	BodyJSON                      // encoding/json
	BodyForm                      // application/x-www-form-urlencoded
	BodyMultipart                 // multipart/form-data: bound by Fiber, not read here
	BodyXML                       // text/xml, application/xml: bound by Fiber, not read here
)

func (k BodyKind) String() string {
	return [...]string{"none", "json", "form", "multipart", "xml"}[k]
}

// FiberContentType is the Content-Type fasthttp keeps for a request: the last header of that
// name (net/http's Header.Get returns the first).
func FiberContentType(h http.Header) string {
	v := h.Values("Content-Type")
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// FiberBodyKind classifies a Content-Type exactly as Fiber v2.52's BodyParser does: lower-cased,
// a vendor suffix ("application/vnd.x+json") reduced to its structured type, cut at ';' (with no
// trimming: "application/json ;charset=utf-8" is not JSON to Fiber), then JSON when it ends in
// "json".
func FiberBodyKind(contentType string) BodyKind {
	ct := parseVendorSpecific(strings.ToLower(contentType))
	if i := strings.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	switch {
	case strings.HasSuffix(ct, "json"):
		return BodyJSON
	case ct == "application/x-www-form-urlencoded":
		return BodyForm
	case ct == "multipart/form-data":
		return BodyMultipart
	case ct == "text/xml" || ct == "application/xml":
		return BodyXML
	}
	return BodyNone
}

// parseVendorSpecific is Fiber's utils.ParseVendorSpecificContentType.
func parseVendorSpecific(ct string) string {
	plus := strings.Index(ct, "+")
	if plus == -1 {
		return ct
	}
	var parsable string
	if semi := strings.Index(ct, ";"); semi == -1 {
		parsable = ct[plus+1:]
	} else if plus < semi {
		parsable = ct[plus+1 : semi]
	} else {
		return ct[:semi]
	}
	slash := strings.Index(ct, "/")
	if slash == -1 {
		return ct
	}
	return ct[:slash+1] + parsable
}

// ErrUndecodable is returned when a body's Content-Encoding cannot be undone within the limit.
var ErrUndecodable = errors.New("content encoding could not be decoded within the capture limit")

// FiberJSONBody returns the bytes Fiber's Ctx.Body() hands to the JSON decoder: the body with
// the request's Content-Encoding (the last such header; gzip, deflate, br/brotli, applied in the
// order listed, as Fiber does) undone, at most limit bytes of output.
func FiberJSONBody(body []byte, h http.Header, limit int) ([]byte, error) {
	v := h.Values("Content-Encoding")
	if len(v) == 0 || v[len(v)-1] == "" {
		return body, nil
	}
	encs := strings.Split(v[len(v)-1], ",")
	out := body
	for i, e := range encs {
		e = strings.TrimLeft(e, " ")
		var r io.Reader
		var err error
		switch e {
		case "gzip":
			r, err = gzip.NewReader(bytes.NewReader(out))
		case "deflate":
			r, err = zlib.NewReader(bytes.NewReader(out))
		case "br", "brotli":
			r = brotli.NewReader(bytes.NewReader(out))
		default:
			if len(encs) == 1 {
				return out, nil
			}
			if i == 0 {
				return nil, nil // Fiber returns an empty body here
			}
			return out, nil
		}
		if err != nil {
			return nil, ErrUndecodable
		}
		dec, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
		if err != nil || len(dec) > limit {
			return nil, ErrUndecodable
		}
		out = dec
	}
	return out, nil
}

// FormValue returns the value Fiber's form binding stores in the struct field name from an
// application/x-www-form-urlencoded body, parsed by fasthttp's own argument parser (the one
// Flowker runs). Fiber sets the field from the last value of a key equal to name under case
// folding; when several differently spelled keys match (name and NAME), the one applied last
// depends on Go's map order, so ambiguous is true and the value cannot be known. rawContentType
// matters: fasthttp reads form arguments only when it starts, case-sensitively, with
// "application/x-www-form-urlencoded".
func FormValue(body []byte, rawContentType, name string) (v Value, ambiguous bool) {
	if !strings.HasPrefix(rawContentType, "application/x-www-form-urlencoded") {
		return Value{}, false
	}
	var args fasthttp.Args
	args.ParseBytes(body)
	var spelling string
	for k, val := range args.All() {
		key := string(k)
		if i := strings.IndexByte(key, '['); i >= 0 {
			if strings.EqualFold(key[:i], name) {
				ambiguous = true // bracket notation: bound through Fiber's path rules, not read here
			}
			continue
		}
		if !strings.EqualFold(key, name) {
			continue
		}
		if spelling != "" && spelling != key {
			ambiguous = true
		}
		spelling = key
		v = Value{Text: string(val), Found: true, IsString: true}
	}
	if ambiguous {
		return Value{}, true
	}
	return v, false
}

// FormAmbiguousKeys lists the keys of a form body that repeat or collide under case folding.
func FormAmbiguousKeys(body []byte, limit int) []string {
	var args fasthttp.Args
	args.ParseBytes(body)
	seen := map[string]bool{}
	reported := map[string]bool{}
	var out []string
	for k := range args.All() {
		f := foldKey(string(k))
		if seen[f] && !reported[f] && len(out) < limit {
			reported[f] = true
			out = append(out, Sanitize(string(k)))
		}
		seen[f] = true
	}
	return out
}
