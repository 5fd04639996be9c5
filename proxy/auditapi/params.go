package auditapi

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Search parameters (Flowker's names).
const (
	paramEventType    = "eventType"
	paramAction       = "action"
	paramResult       = "result"
	paramResourceType = "resourceType"
	paramResourceID   = "resourceId"
	paramDateFrom     = "dateFrom"
	paramDateTo       = "dateTo"
	paramLimit        = "limit"
	paramCursor       = "cursor"
	paramSortOrder    = "sortOrder"
	paramActorType    = "actorType"
	paramActorID      = "actorId"
)

// MaxActorIDLen is the longest accepted actorId (stored actor ids are at most 255 bytes).
const MaxActorIDLen = 255

// Page size bounds (Flowker's).
const (
	DefaultLimit = 20
	MaxLimit     = 100
)

var knownParams = []string{paramEventType, paramAction, paramResult, paramResourceType, paramResourceID,
	paramDateFrom, paramDateTo, paramLimit, paramCursor, paramSortOrder, paramActorType, paramActorID}

// searchRequest is a validated GET /v1/audit-events request.
type searchRequest struct {
	Filter sink.Filter
	Order  sink.Order
	Limit  int
	After  *sink.Position
	// Empty is set when the filter can match nothing that a sink can represent (dateTo at the
	// zero time, which sink.Filter would read as "no bound").
	Empty bool
}

// parseSearch validates the raw query string of a search with Flowker's semantics. Unknown
// parameters are ignored; empty values mean "not given". Errors are *apiError.
func parseSearch(rawQuery string, codec cursorCodec) (searchRequest, *apiError) {
	req := searchRequest{Limit: DefaultLimit, Order: sink.Desc}
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return req, badRequest(CodeInvalidQueryParam, "invalid query string: %s", queryErrText(err))
	}
	for _, name := range knownParams {
		if n := len(v[name]); n > 1 {
			return req, badRequest(CodeInvalidQueryParam, "query parameter %s given %d times; give it at most once", name, n)
		}
	}
	if s := v.Get(paramLimit); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return req, badRequest(CodeInvalidQueryParam, "invalid limit %q: must be an integer (1 to %d)", clip(s), MaxLimit)
		}
		switch {
		case n <= 0:
			n = DefaultLimit
		case n > MaxLimit:
			n = MaxLimit
		}
		req.Limit = n
	}
	if s := v.Get(paramResourceID); s != "" {
		u, err := uuid.Parse(s)
		if err != nil {
			return req, badRequest(CodeInvalidID, "invalid resourceId format, expected UUID")
		}
		req.Filter.ResourceID = u.String()
	}
	from, hasFrom, apiErr := parseDate(v, paramDateFrom)
	if apiErr != nil {
		return req, apiErr
	}
	to, hasTo, apiErr := parseDate(v, paramDateTo)
	if apiErr != nil {
		return req, apiErr
	}
	if hasFrom && hasTo && from.After(to) {
		return req, badRequest(CodeInvalidDateRange, "invalid date range: dateFrom must not be after dateTo")
	}
	// The sink compares microsecond timestamps: an inclusive bound with a sub-microsecond part is
	// rounded inwards (from up, to down), which selects exactly the same events. sink.Filter reads
	// the zero time as "no bound": a dateFrom at (or just before) it bounds nothing, a dateTo at it
	// matches nothing (Empty).
	if hasFrom {
		m := from.UnixMicro()
		if from.Nanosecond()%1000 != 0 {
			m++
		}
		req.Filter.From = time.UnixMicro(m).UTC()
		if req.Filter.From.Before(time.Time{}) {
			req.Filter.From = time.Time{}
		}
	}
	if hasTo {
		req.Filter.To = time.UnixMicro(to.UnixMicro()).UTC()
		if !req.Filter.To.After(time.Time{}) {
			req.Filter.To = time.Time{}
			req.Empty = true
		}
	}
	for _, f := range []struct {
		name    string
		allowed []string
		dst     *string
	}{
		{paramEventType, chain.EventTypes, &req.Filter.EventType},
		{paramAction, chain.Actions, &req.Filter.Action},
		{paramResult, chain.Results, &req.Filter.Result},
		{paramResourceType, chain.ResourceTypes, &req.Filter.ResourceType},
		{paramActorType, chain.ActorTypes, &req.Filter.ActorType},
	} {
		s := v.Get(f.name)
		if s == "" {
			continue
		}
		if !slices.Contains(f.allowed, s) {
			return req, badRequest(CodeInvalidFilter, "invalid %s %q: must be one of %s", f.name, clip(s), strings.Join(f.allowed, ", "))
		}
		*f.dst = s
	}
	if s := v.Get(paramActorID); s != "" {
		switch {
		case len(s) > MaxActorIDLen:
			return req, badRequest(CodeInvalidQueryParam, "invalid actorId: longer than %d bytes", MaxActorIDLen)
		case !utf8.ValidString(s) || strings.IndexByte(s, 0) >= 0:
			return req, badRequest(CodeInvalidQueryParam, "invalid actorId: must be UTF-8 text without NUL")
		}
		req.Filter.ActorID = s
	}
	if strings.ToUpper(v.Get(paramSortOrder)) == "ASC" {
		req.Order = sink.Asc
	}
	if s := v.Get(paramCursor); s != "" {
		st, err := codec.decode(s)
		if err != nil {
			return req, badRequest(CodeInvalidCursor, "%s; start again without a cursor", err.Error())
		}
		if st.Order != req.Order {
			return req, badRequest(CodeInvalidCursor, "invalid cursor: it was issued for sortOrder=%s, not %s; repeat the same sortOrder or start again without a cursor", st.Order, req.Order)
		}
		if st.Filter != digestFilter(req.Filter) {
			return req, badRequest(CodeInvalidCursor, "invalid cursor: it was issued for other filters; repeat the same filters or start again without a cursor")
		}
		pos := st.Pos
		req.After = &pos
	}
	return req, nil
}

// parseDate reads an RFC 3339 date parameter (fractions and offsets accepted); given is false
// when the parameter is absent or empty.
func parseDate(v url.Values, name string) (t time.Time, given bool, _ *apiError) {
	s := v.Get(name)
	if s == "" {
		return time.Time{}, false, nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		hint := ""
		if strings.Contains(s, " ") {
			hint = " (a '+' in an offset must be sent as %2B)"
		}
		return time.Time{}, false, badRequest(CodeInvalidDateFormat, "invalid %s %q: expected RFC 3339, e.g. 2026-03-17T14:35:15Z%s", name, clip(s), hint)
	}
	return t, true, nil
}

// queryErrText names what is wrong with a query string without echoing much of it.
func queryErrText(err error) string {
	var esc url.EscapeError
	if errors.As(err, &esc) {
		return "bad percent-encoding"
	}
	if strings.Contains(err.Error(), "semicolon") {
		return "';' is not a parameter separator, use '&'"
	}
	return "cannot be parsed"
}

// clip shortens a client-supplied value echoed in an error message.
func clip(s string) string {
	const max = 64
	if len(s) <= max {
		return strings.ToValidUTF8(s, "\uFFFD")
	}
	return strings.ToValidUTF8(s[:max], "\uFFFD") + "…"
}
