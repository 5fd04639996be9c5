package fakeflowker

import (
	"encoding/json"
	"net/http"
)

// apiError is Flowker's handler error body (api.ErrorResponse).
type apiError struct {
	Code    string `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

// frameworkError is lib-commons' FiberErrorHandler body: code is numeric.
type frameworkError struct {
	Code    int    `json:"code"`
	Title   string `json:"title"`
	Message string `json:"message"`
}

// libResponse is lib-commons' Response (catalog validate errors): every key
// is omitted when empty.
type libResponse struct {
	Title   string `json:"title,omitempty"`
	Message string `json:"message,omitempty"`
	Code    string `json:"code,omitempty"`
}

// writeJSON encodes v with encoding/json (so <, >, & become \u003c...) like
// Fiber's c.JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b, _ = json.Marshal(apiError{Code: "FLK-9999", Title: "Internal Server Error", Message: "internal server error"})
	}

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeFrameworkError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, frameworkError{Code: status, Title: "request_failed", Message: msg})
}

func writeNoContent(w http.ResponseWriter) {
	w.WriteHeader(http.StatusNoContent)
}

func (c *reqCtx) json(status int, v any) { writeJSON(c.w, status, v) }

func (c *reqCtx) fail(status int, code, title, msg string) {
	writeJSON(c.w, status, apiError{Code: code, Title: title, Message: msg})
}

func (c *reqCtx) badRequest(code, msg string) {
	c.fail(http.StatusBadRequest, code, "Bad Request", msg)
}

func (c *reqCtx) notFound(code, msg string) { c.fail(http.StatusNotFound, code, "Not Found", msg) }

func (c *reqCtx) unprocessable(code, msg string) {
	c.fail(http.StatusUnprocessableEntity, code, "Unprocessable Entity", msg)
}

func (c *reqCtx) conflict(code, msg string) { c.fail(http.StatusConflict, code, "Conflict", msg) }

func (c *reqCtx) internal() {
	c.fail(http.StatusInternalServerError, "FLK-9999", "Internal Server Error", "internal server error")
}

func (c *reqCtx) invalidBody() { c.badRequest("FLK-0001", "invalid request body") }

// apiErr is a handler-level failure: a status plus the error body.
type apiErr struct {
	status int
	body   apiError
}

func newAPIErr(status int, code, title, msg string) *apiErr {
	return &apiErr{status: status, body: apiError{Code: code, Title: title, Message: msg}}
}

func errBadRequest(code, msg string) *apiErr {
	return newAPIErr(http.StatusBadRequest, code, "Bad Request", msg)
}

func errNotFound(code, msg string) *apiErr {
	return newAPIErr(http.StatusNotFound, code, "Not Found", msg)
}

func errUnprocessable(code, msg string) *apiErr {
	return newAPIErr(http.StatusUnprocessableEntity, code, "Unprocessable Entity", msg)
}

func errConflict(code, msg string) *apiErr {
	return newAPIErr(http.StatusConflict, code, "Conflict", msg)
}

func errInternal() *apiErr {
	return newAPIErr(http.StatusInternalServerError, "FLK-9999", "Internal Server Error", "internal server error")
}

func (c *reqCtx) sendErr(e *apiErr) { writeJSON(c.w, e.status, e.body) }
