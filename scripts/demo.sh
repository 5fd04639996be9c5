#!/usr/bin/env bash
# make demo: the bundled fake Flowker on 127.0.0.1:4021 and the sidecar in front of it on :4020,
# with demo credentials, a little traffic to look at, and the URLs and curl lines to try.
set -euo pipefail
BIN=${1:-./bin/flowker-audit}
FLOWKER_KEY=demo-flowker-key
AUDIT_KEY=demo-audit-key

cleanup() { kill "${SIDECAR_PID:-}" "${FAKE_PID:-}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

mkdir -p data
"$BIN" fake-flowker --listen 127.0.0.1:4021 --api-key "$FLOWKER_KEY" --execution-delay 2s >data/fake-flowker.log 2>&1 &
FAKE_PID=$!
FLOWKER_AUDIT_AUTH_API_KEYS=$AUDIT_KEY \
FLOWKER_AUDIT_WATCHER_API_KEY=$FLOWKER_KEY \
FLOWKER_AUDIT_LOG_FORMAT=text \
	"$BIN" serve --config config.yaml >data/sidecar.log 2>&1 &
SIDECAR_PID=$!

for _ in $(seq 1 100); do
	curl -fsS -o /dev/null http://127.0.0.1:9464/readyz 2>/dev/null && break
	kill -0 "$SIDECAR_PID" 2>/dev/null || { echo "the sidecar did not start:"; cat data/sidecar.log; exit 1; }
	sleep 0.1
done

# A little traffic through the sidecar, so the trail is not empty.
hdr=(-H "X-API-Key: $FLOWKER_KEY" -H 'Content-Type: application/json')
wf=$(curl -fsS -X POST http://127.0.0.1:4020/v1/workflows "${hdr[@]}" \
	-d '{"name":"demo-payouts","nodes":[{"id":"hook","type":"trigger","data":{"triggerType":"webhook","path":"/demo/payouts","method":"POST"}}]}' |
	sed -E 's/.*"workflowId":"([^"]+)".*/\1/')
curl -fsS -o /dev/null -X POST "http://127.0.0.1:4020/v1/workflows/$wf/activate" "${hdr[@]}"
curl -fsS -o /dev/null -X POST "http://127.0.0.1:4020/v1/workflows/$wf/executions" "${hdr[@]}" -H 'Idempotency-Key: demo-1' -d '{"inputData":{"amount":10}}'
curl -sS -o /dev/null -X POST http://127.0.0.1:4020/v1/provider-configurations "${hdr[@]}" \
	-d '{"name":"demo-tracer","providerId":"tracer","config":{"base_url":"https://tracer.example","api_key":"not-stored-anywhere"}}'

cat <<MSG

flowker-audit demo is running (Ctrl-C stops it; logs in data/*.log)

  Fake Flowker   http://127.0.0.1:4021           X-API-Key: $FLOWKER_KEY
  Sidecar        http://127.0.0.1:4020           call it instead of Flowker (same API)
  Audit Trail    http://127.0.0.1:4020/audit-trail   audit API key: $AUDIT_KEY
  Metrics        http://127.0.0.1:9464/metrics   health: /healthz  readiness: /readyz

Try:
  # a change through the sidecar (the response carries X-Audit-Id)
  curl -si -X POST localhost:4020/v1/workflows -H 'X-API-Key: $FLOWKER_KEY' -H 'Content-Type: application/json' -d '{"name":"my-flow"}'
  # a failed attempt is audited too
  curl -s -X POST localhost:4020/v1/workflows -H 'X-API-Key: $FLOWKER_KEY' -H 'Content-Type: text/plain' -d 'oops'
  # the audit trail, newest first
  curl -s 'localhost:4020/v1/audit-events?limit=5' -H 'X-API-Key: $AUDIT_KEY'
  # verify the hash chain up to the newest event
  id=\$(curl -s 'localhost:4020/v1/audit-events?limit=1' -H 'X-API-Key: $AUDIT_KEY' | sed -E 's/.*"eventId":"([^"]+)".*/\1/')
  curl -s localhost:4020/v1/audit-events/\$id/verify -H 'X-API-Key: $AUDIT_KEY'
MSG
wait "$SIDECAR_PID"
