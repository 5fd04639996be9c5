// Package fakeflowker is an in-memory fake of the Flowker workflow API
// (LerianStudio/flowker v1.0.2). The audit sidecar's tests and `make demo`
// run against it because Flowker itself (MongoDB + PostgreSQL) cannot be
// installed here.
//
// The fake follows shared/reference/flowker-contract.md (the folder beside the checkout) and, where the
// two disagree, the real recording in testdata/recording/traffic.jsonl
// (for example duplicate workflow names are accepted with 201).
//
// # HTTP behaviour copied from Flowker / Fiber v2
//
//   - Routing uses the raw request path as received (not percent-decoded, not
//     slash-collapsed), lower-cased, with trailing slashes stripped, so
//     /V1/Workflows/ works while //v1/workflows and /v1/work%66lows answer the
//     framework 404 {"code":404,"title":"request_failed","message":"Cannot GET ..."}.
//     A known path with the wrong method answers 405 with an Allow header.
//     Path parameters keep their raw text and are parsed with uuid.Parse.
//   - When Options.APIKey is set, every path starting with /v1 requires
//     X-API-Key (constant-time compare), including unknown /v1 paths ("guards
//     add up"). /health, /readyz and /version are public.
//   - Bodies are parsed like Fiber's BodyParser: a Content-Type ending in
//     "json" is decoded with encoding/json (unknown fields ignored), form and
//     multipart bodies fill top-level string fields, XML is decoded with
//     encoding/xml, anything else is 400 FLK-0001. Bodies above 4 MiB get the
//     framework 413.
//   - Every response carries X-Request-Id (echoed or generated).
//
// # Executions
//
// POST /v1/workflows/{id}/executions and the webhooks create executions in
// status "running". Idempotency-Key is global: a replay returns the existing
// execution (201 while it is running, 200 once terminal), even from another
// workflow. After Options.ExecutionDelay (default 50ms), or when
// Server.FinishExecution is called, the execution reaches a terminal state
// through a deterministic simulation of Flowker's state machine:
//
//   - A workflow without a trigger node fails with
//     "no trigger node found in workflow".
//   - The graph is walked depth-first from the first trigger node, following
//     edges in order. Conditional nodes always take the "true" branch.
//   - An executor node fails the execution when its provider configuration
//     is missing (`node "<id>": provider config not found`), disabled
//     (`node "<id>": provider configuration is not active`), or when any
//     string config value whose key ends in "base_url" contains "outage"
//     (`node "<id>": executor call failed after 5 attempts: executor error:
//     http request failed with status 500`, the message Flowker produced in
//     the recording).
//   - inputData.simulateFailure == true fails the execution at the first
//     executor node (or at the trigger node when there is none) with
//     `node "<id>": executor call failed after 5 attempts: simulated failure`.
//   - Otherwise every executor node "calls" a simulated provider that answers
//     200 with body {"decision":"approved","score":12,"echo":"<request JSON>"};
//     inputMapping/outputMapping with dotted paths are applied, and the
//     execution completes with finalOutput = the workflow context
//     ({"workflow": inputData, "<nodeId>": output, ...}) or the output of a
//     set_output action node.
//
// # Other simplifications
//
// Executor schemas are not enforced on workflow nodes; provider configuration
// schemas are checked with a small JSON-Schema subset (type, required,
// properties, minLength, maxLength, enum, minimum, maximum, items,
// additionalProperties). Failures answer 500 FLK-9999, as Flowker does.
// Executor configurations have no create route in Flowker, so the fake
// starts with two seeded ones and tests can add more with
// Server.SeedExecutorConfig. The audit routes exist but the fake keeps no
// native audit trail: the list is always empty and single events are 404.
//
// # Code layout
//
// Workflows, provider configurations and executor configurations share their
// list, get, update and delete handlers (family.go, generic over the stored
// entity and its JSON answer); workflows.go, providers.go and executors.go
// hold only what differs: validation, filters, status rules and the routes
// the other families do not have.
package fakeflowker
