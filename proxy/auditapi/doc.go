// Package auditapi answers Flowker's audit query API from the sidecar's query sink, without
// forwarding anything to Flowker:
//
//	GET /v1/audit-events               search (filters, keyset paging with an opaque cursor)
//	GET /v1/audit-events/{id}          one event by eventId
//	GET /v1/audit-events/{id}/verify   recompute the hash chain up to that event
//	GET /audit-trail/config.json       what the Audit Trail page needs (actor names, event types)
//	GET /v1/audit-access-events[/...]  the access trail (Options.AccessQuerier): the same routes over
//	                                   the reads of this API recorded as events of their own
//
// Parameters, response shapes and error codes follow Flowker (reference/flowker-contract.md §2, §4),
// with these deliberate differences, all of them answers where Flowker has bugs or none:
//
//   - an unknown eventType/action/result/resourceType is 400 FLK-0611 (Flowker: 500 FLK-9999);
//   - a bad cursor is 400 FLK-0610 (Flowker: 500 FLK-9999);
//   - a query parameter given more than once (?limit=1&limit=2) is 400 FLK-0304, so a filter is
//     never silently dropped (Flowker takes the first value);
//   - the cursor is opaque (URL-safe base64 of a versioned binary payload authenticated with
//     HMAC-SHA256) and bound to the sort order and the filters it was issued for: reusing it with
//     other ones is 400 FLK-0610 instead of an inconsistent page;
//   - the sort key is (timestamp, chainId, sequence), the order of the query sink, not Flowker's
//     internal row id; paging is keyset, so pages are stable while new events arrive;
//   - verify recomputes every hash and link of the event's chain (Flowker checks links only, and
//     its endpoint always fails); firstInvalidId is the chain sequence number, and additive fields
//     (chainId, fromSequence, toSequence, reason, detail) say what was checked;
//   - when the query sink is unavailable the answer is 503 FLK-0612 "audit store unavailable".
//
// Every request is authenticated first (see Authenticator), so a 401 never tells whether an id
// exists. Only GET and HEAD are served; other methods get 405 in Flowker's framework format.
package auditapi
