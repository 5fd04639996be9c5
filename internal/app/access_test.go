package app

import (
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/jsonb"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
)

// TestAccessDraft: a read becomes an AUDIT_TRAIL_READ draft whose actor is the caller, whose
// resource is the event read (or the endpoint), whose result follows the status, and whose
// context is canonical jsonb text (as hashed).
func TestAccessDraft(t *testing.T) {
	tests := []struct {
		name                         string
		read                         auditapi.Read
		actorType, ip, resource, res string
		context                      string
	}{
		{"search by a key", auditapi.Read{Caller: "key:0123456789ab", CallerName: "ci", Endpoint: "list", Method: "GET", Path: "/v1/audit-events",
			Filters: map[string]string{"limit": "2", "eventType": "WORKFLOW_CREATED"}, Status: 200, Rows: 2, Duration: 1500 * time.Microsecond, RemoteAddr: "127.0.0.1:5555"},
			chain.ActorAPIKey, "127.0.0.1", "list", chain.ResultSuccess,
			`{"rows": 2, "path": "/v1/audit-events", "method": "GET", "status": 200, "filters": {"limit": "2", "eventType": "WORKFLOW_CREATED"}, "endpoint": "list", "callerName": "ci", "durationMs": 1.5}`},
		{"get by a bearer token, not found", auditapi.Read{Caller: "bearer:0123456789ab", Endpoint: "access-get", Method: "GET", Path: "/v1/audit-access-events/x",
			EventID: "5f0c6a55-0000-4000-8000-000000000001", Status: 404, RemoteAddr: "[::1]:80"},
			chain.ActorUser, "::1", "5f0c6a55-0000-4000-8000-000000000001", chain.ResultFailed,
			`{"path": "/v1/audit-access-events/x", "rows": 0, "method": "GET", "status": 404, "eventId": "5f0c6a55-0000-4000-8000-000000000001", "endpoint": "access-get", "durationMs": 0}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := AccessDraft(tc.read)
			if err != nil {
				t.Fatal(err)
			}
			if d.EventType != AccessEventType || d.Action != AccessAction || d.ResourceType != AccessResourceType || d.EventID == "" ||
				d.Actor.Type != tc.actorType || d.Actor.ID != tc.read.Caller || d.Actor.IPAddress != tc.ip || d.ResourceID != tc.resource ||
				d.Result != tc.res || string(d.Metadata) != "{}" {
				t.Fatalf("draft %+v", d)
			}
			want, err := jsonb.Canonical([]byte(tc.context))
			if err != nil {
				t.Fatal(err)
			}
			if string(d.Context) != string(want) {
				t.Fatalf("context\n got %s\nwant %s", d.Context, want)
			}
		})
	}
}
