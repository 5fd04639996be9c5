package auditapi

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error codes answered by this package (Flowker's, pkg/constant/errors.go).
const (
	CodeInvalidID           = "FLK-0002" // bad UUID in the path or in resourceId
	CodeInvalidQueryParam   = "FLK-0304" // limit not an integer, a parameter given twice, bad query string
	CodeInvalidDateFormat   = "FLK-0305" // dateFrom/dateTo not RFC 3339
	CodeInvalidDateRange    = "FLK-0308" // dateFrom after dateTo
	CodeNotFound            = "FLK-0600" // no event with that eventId
	CodeInvalidCursor       = "FLK-0610" // cursor tampered, truncated, of another version, filters or order
	CodeInvalidFilter       = "FLK-0611" // eventType/action/result/resourceType/actorType not in the enum
	CodeStoreUnavailable    = "FLK-0612" // the query sink cannot be reached
	CodeServiceUnavailable  = "FLK-0801" // the authentication upstream (Flowker) cannot be reached
	CodeInternal            = "FLK-9999" // a bug
	CodeUnauthorized        = "UNAUTHORIZED"
	frameworkTitle          = "request_failed"
	titleBadRequest         = "Bad Request"
	titleNotFound           = "Not Found"
	titleUnauthorized       = "Unauthorized"
	titleServiceUnavailable = "Service Unavailable"
	titleInternal           = "Internal Server Error"
)

// apiError is an error answered as Flowker's handler error {code, title, message}.
type apiError struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badRequest(code, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Title: titleBadRequest, Message: fmt.Sprintf(format, args...)}
}

var (
	errNotFound         = &apiError{Status: http.StatusNotFound, Code: CodeNotFound, Title: titleNotFound, Message: "audit entry not found"}
	errStoreUnavailable = &apiError{Status: http.StatusServiceUnavailable, Code: CodeStoreUnavailable, Title: titleServiceUnavailable, Message: "audit store unavailable"}
	errAuthUnavailable  = &apiError{Status: http.StatusServiceUnavailable, Code: CodeServiceUnavailable, Title: titleServiceUnavailable, Message: "cannot check credentials: the authentication upstream is unavailable"}
	errInternal         = &apiError{Status: http.StatusInternalServerError, Code: CodeInternal, Title: titleInternal, Message: "internal server error"}
)

// frameworkError is Flowker's framework error format (unknown route, wrong method): the code is
// the numeric HTTP status.
type frameworkError struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

// setCommonHeaders sets the headers of every answer of the API.
func setCommonHeaders(h http.Header) {
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
}

// writeJSONBytes writes an already encoded JSON body.
func writeJSONBytes(w http.ResponseWriter, status int, body []byte) {
	setCommonHeaders(w.Header())
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeJSON encodes v (a value of this package whose encoding cannot fail) and writes it.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(errInternal)
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

func writeError(w http.ResponseWriter, e *apiError) { writeJSON(w, e.Status, e) }
