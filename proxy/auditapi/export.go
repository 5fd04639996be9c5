package auditapi

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/internal/exportfile"
	"github.com/flowker-audit/flowker-audit/sink"
)

// ExportPath is the export endpoint: GET /v1/audit-events/export?format=csv|ndjson&<filters>.
const ExportPath = "/v1/audit-events/export"

// Export formats.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// exportPageSize is how many events one sink call returns while exporting: the export holds at
// most three such pages (one being written, one queued, one being read), whatever its length.
const exportPageSize = 1000

// exportFlushBytes is how much output is buffered before it is sent.
const exportFlushBytes = 256 << 10

// CSVColumns are the columns of the CSV export, one per event field.
var CSVColumns = []string{"eventId", "eventType", "action", "result", "resourceId", "resourceType",
	"actorType", "actorId", "actorIpAddress", "actorAuth", "context", "metadata", "timestamp", "hash", "previousHash", "chainId", "sequence"}

// exportRequest is a validated export request.
type exportRequest struct {
	search  searchRequest
	format  string
	filters map[string]string // the filter parameters as given, for the NDJSON header
}

const paramFormat = "format"

// parseExport validates an export's query: format (csv or ndjson) and the search filters with
// the list's exact semantics. limit is ignored (an export has no limit); cursor is refused.
func parseExport(rawQuery string, codec cursorCodec) (exportRequest, *apiError) {
	var req exportRequest
	v, err := url.ParseQuery(rawQuery)
	if err != nil {
		return req, badRequest(CodeInvalidQueryParam, "invalid query string: %s", queryErrText(err))
	}
	if n := len(v[paramFormat]); n > 1 {
		return req, badRequest(CodeInvalidQueryParam, "query parameter format given %d times; give it at most once", n)
	}
	switch f := strings.ToLower(v.Get(paramFormat)); f {
	case FormatCSV, FormatNDJSON:
		req.format = f
	case "":
		return req, badRequest(CodeInvalidQueryParam, "format is required: csv (for reading) or ndjson (verifiable)")
	default:
		return req, badRequest(CodeInvalidQueryParam, "invalid format %q: must be one of csv, ndjson", clip(v.Get(paramFormat)))
	}
	if v.Get(paramCursor) != "" {
		return req, badRequest(CodeInvalidQueryParam, "an export takes no cursor: it returns every matching event")
	}
	s, apiErr := parseSearch(rawQuery, codec)
	if apiErr != nil {
		return req, apiErr
	}
	req.search = s
	req.filters = map[string]string{}
	for _, name := range knownParams {
		if name == paramLimit || name == paramCursor || name == paramSortOrder {
			continue
		}
		if x := v.Get(name); x != "" {
			req.filters[name] = x
		}
	}
	return req, nil
}

// contiguous reports whether the filters keep every chain contiguous (time bounds only).
func (r exportRequest) contiguous() bool {
	for name := range r.filters {
		if !exportfile.ContiguousFilters[name] {
			return false
		}
	}
	return true
}

// exportPage is one page read ahead by the exporter.
type exportPage struct {
	events []chain.Event
	err    error
}

// readPages pages through every event matching s, sending each page on out; it closes out when
// done, after an error, or when ctx ends.
func readPages(ctx context.Context, q sink.Querier, s searchRequest, out chan<- exportPage) {
	defer close(out)
	if s.Empty {
		return
	}
	query := sink.Query{Filter: s.Filter, Order: s.Order, Limit: exportPageSize}
	for {
		p, err := q.Search(ctx, query)
		if err == nil {
			err = checkFiltered(p.Events, &s.Filter)
		}
		if err != nil {
			select {
			case out <- exportPage{err: err}:
			case <-ctx.Done():
			}
			return
		}
		if len(p.Events) > exportPageSize {
			p.Events, p.More = p.Events[:exportPageSize], true
		}
		if len(p.Events) > 0 {
			select {
			case out <- exportPage{events: p.Events}:
			case <-ctx.Done():
				return
			}
		}
		if !p.More || len(p.Events) == 0 {
			return
		}
		last := sink.PositionOf(&p.Events[len(p.Events)-1])
		query.After = &last
	}
}

// export streams every event matching the request. The first page is read before the status is
// sent, so that an unavailable store is still a 503; a failure after that aborts the response
// (the client sees an incomplete transfer, and an NDJSON export lacks its end line).
func (a *API) export(w http.ResponseWriter, r *http.Request, q sink.Querier, req exportRequest) int {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	pages := make(chan exportPage, 1)
	go readPages(ctx, q, req.search, pages)
	defer func() {
		cancel()
		for range pages { // let the reader finish
		}
	}()
	first, ok := <-pages
	if ok && first.err != nil {
		if errors.Is(first.err, errFilterIgnored) {
			a.log.Error("audit api: query sink ignored a filter (a plugin built before that filter existed?)", "err", first.err)
			writeError(w, errStoreUnavailable)
			return 0
		}
		a.storeError(w, r, "export", first.err)
		return 0
	}

	stamp := a.now().UTC().Format("20060102T150405Z")
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	if req.format == FormatCSV {
		h.Set("Content-Type", "text/csv; charset=utf-8; header=present")
		h.Set("Content-Disposition", `attachment; filename="audit-events-`+stamp+`.csv"`)
		h.Set("X-Audit-Export-Verifiable", "false")
	} else {
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Content-Disposition", `attachment; filename="audit-events-`+stamp+`.ndjson"`)
		h.Set("X-Audit-Export-Verifiable", "true")
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return 0
	}
	rc := http.NewResponseController(w)
	bw := bufio.NewWriterSize(w, exportFlushBytes)
	flush := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return err
		}
		return nil
	}
	var (
		n   int
		err error
	)
	if req.format == FormatCSV {
		n, err = a.writeCSV(bw, first, ok, pages, flush)
	} else {
		n, err = a.writeNDJSON(bw, req, first, ok, pages, flush)
	}
	if err == nil {
		err = flush()
	}
	if err != nil {
		if r.Context().Err() != nil {
			a.log.Debug("audit api: export: client went away", "rows", n)
			return n
		}
		a.log.Error("audit api: export failed after it started; the response is cut short", "rows", n, "err", err)
		panic(http.ErrAbortHandler)
	}
	return n
}

// forEach calls fn for every event of first and of the pages that follow, flushing after each
// page.
func forEach(first exportPage, ok bool, pages <-chan exportPage, flush func() error, fn func(*chain.Event) error) (int, error) {
	n := 0
	p := first
	for ok {
		if p.err != nil {
			return n, p.err
		}
		for i := range p.events {
			if err := fn(&p.events[i]); err != nil {
				return n, err
			}
			n++
		}
		if err := flush(); err != nil {
			return n, err
		}
		p, ok = <-pages
	}
	return n, nil
}

func (a *API) writeCSV(bw *bufio.Writer, first exportPage, ok bool, pages <-chan exportPage, flush func() error) (int, error) {
	cw := csv.NewWriter(bw)
	cw.UseCRLF = true // RFC 4180
	if err := cw.Write(CSVColumns); err != nil {
		return 0, err
	}
	rec := make([]string, len(CSVColumns))
	return forEach(first, ok, pages, func() error {
		cw.Flush()
		if err := cw.Error(); err != nil {
			return err
		}
		return flush()
	}, func(e *chain.Event) error {
		rec[0], rec[1], rec[2], rec[3] = e.EventID, e.EventType, e.Action, e.Result
		rec[4], rec[5] = e.ResourceID, e.ResourceType
		rec[6], rec[7], rec[8], rec[9] = e.Actor.Type, e.Actor.ID, e.Actor.IPAddress, ActorAuth(e.Context)
		rec[10], rec[11] = jsonText(e.Context), jsonText(e.Metadata)
		rec[12] = e.Timestamp.UTC().Format(chain.TimestampLayout)
		rec[13], rec[14], rec[15] = e.Hash, e.PreviousHash, e.ChainID
		rec[16] = strconv.FormatUint(e.Sequence, 10)
		return cw.Write(rec)
	})
}

// ActorAuth says how the sidecar knows an event's actor, from context.auth: the method (api_key,
// jwt, trusted_header, anonymous), with " (unverified)" when it is a JWT subject whose signature
// was not checked — a claim of the client, shown as such wherever actors are shown. Empty for
// events without context.auth (execution outcomes, Flowker's own rows).
func ActorAuth(context []byte) string {
	var c struct {
		Auth *struct {
			Method   string `json:"method"`
			Verified bool   `json:"verified"`
		} `json:"auth"`
	}
	if len(context) == 0 || json.Unmarshal(context, &c) != nil || c.Auth == nil {
		return ""
	}
	if c.Auth.Method == "jwt" && !c.Auth.Verified {
		return "jwt (unverified)"
	}
	return c.Auth.Method
}

// jsonText renders context or metadata as the API does ("{}" when empty).
func jsonText(b []byte) string {
	if len(b) == 0 {
		return "{}"
	}
	return string(b)
}

func (a *API) writeNDJSON(bw *bufio.Writer, req exportRequest, first exportPage, ok bool, pages <-chan exportPage, flush func() error) (int, error) {
	ew, err := exportfile.NewWriter(bw, exportfile.Header{ExportedAt: a.now().UTC().Truncate(time.Microsecond), Filters: req.filters,
		SortOrder: req.search.Order.String(), Contiguous: req.contiguous()})
	if err != nil {
		return 0, err
	}
	n, err := forEach(first, ok, pages, flush, ew.Event)
	if err != nil {
		return n, err
	}
	cps, err := exportfile.FindCheckpoints(a.checkpointLog, ew.Ranges())
	if err != nil {
		// The export stays useful without its checkpoints: say so in the log, write none.
		a.log.Warn("audit api: export: cannot read the checkpoint log; the export carries no checkpoints", "err", err)
		cps = nil
	}
	return n, ew.Finish(cps)
}

// errFilterIgnored marks an event a sink returned although it does not match the filter.
var errFilterIgnored = errors.New("query sink ignored a filter")
