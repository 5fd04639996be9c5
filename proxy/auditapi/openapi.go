package auditapi

import (
	_ "embed"
	"net/http"
)

// OpenAPIPath is where the sidecar publishes the OpenAPI document of the endpoints it answers
// itself (public: it holds no data).
const OpenAPIPath = "/audit-trail/openapi.yaml"

// OpenAPI is the document (proxy/auditapi/openapi.yaml in the repository).
//
//go:embed openapi.yaml
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/yaml")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(OpenAPI)
	}
}
