package auditapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/csv"
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/chain/checkpoint"
	"github.com/flowker-audit/flowker-audit/internal/exportfile"
	"github.com/flowker-audit/flowker-audit/proxy/auditapi/auditapitest"
	"github.com/flowker-audit/flowker-audit/sink"
)

func TestExportParameters(t *testing.T) {
	env := newTestAPI(t, auditapitest.NewStore(testEvents(30)...), nil)
	for _, tc := range []struct {
		name, query, code, msg string
	}{
		{"format missing", "", CodeInvalidQueryParam, "format is required"},
		{"format unknown", "format=xlsx", CodeInvalidQueryParam, `invalid format "xlsx": must be one of csv, ndjson`},
		{"format repeated", "format=csv&format=ndjson", CodeInvalidQueryParam, "format given 2 times"},
		{"cursor refused", "format=csv&cursor=abc", CodeInvalidQueryParam, "no cursor"},
		{"bad eventType as in the list", "format=csv&eventType=nope", CodeInvalidFilter, "invalid eventType"},
		{"bad actorType as in the list", "format=ndjson&actorType=robot", CodeInvalidFilter, "invalid actorType"},
		{"bad resourceId as in the list", "format=csv&resourceId=x", CodeInvalidID, "expected UUID"},
		{"bad date as in the list", "format=csv&dateFrom=yesterday", CodeInvalidDateFormat, "invalid dateFrom"},
		{"date range as in the list", "format=csv&dateFrom=2026-03-03T00:00:00Z&dateTo=2026-03-02T00:00:00Z", CodeInvalidDateRange, "dateFrom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := env.get(t, ExportPath+"?"+tc.query)
			if w.Code != 400 {
				t.Fatalf("status %d: %s", w.Code, w.Body)
			}
			if e := decodeError(t, w); e.Code != tc.code || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("error %+v, want %s containing %q", e, tc.code, tc.msg)
			}
		})
	}
	// Path matching follows the other routes: case-insensitive, one trailing slash.
	if w := env.get(t, "/V1/Audit-Events/EXPORT/?format=csv"); w.Code != 200 {
		t.Fatalf("case-insensitive path: %d %s", w.Code, w.Body)
	}
	if w := env.get(t, "/v1/audit-events/export/verify"); w.Code != 400 {
		t.Fatalf("export/verify: %d", w.Code)
	}
	// limit is ignored: an export has no limit.
	if w := env.get(t, ExportPath+"?format=csv&limit=1"); w.Code != 200 || strings.Count(w.Body.String(), "\r\n") != 31 {
		t.Fatalf("limit=1: %d, %d lines", w.Code, strings.Count(w.Body.String(), "\r\n"))
	}
}

func TestExportStoreUnavailableIs503(t *testing.T) {
	store := auditapitest.NewStore(testEvents(30)...)
	env := newTestAPI(t, store, nil)
	store.SetErr(context.DeadlineExceeded)
	w := env.get(t, ExportPath+"?format=ndjson")
	if w.Code != 503 || decodeError(t, w).Code != CodeStoreUnavailable {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	env = newTestAPI(t, oldPlugin{auditapitest.NewStore(testEvents(30)...)}, nil)
	if w := env.get(t, ExportPath+"?format=csv&actorType=user"); w.Code != 503 {
		t.Fatalf("sink ignoring the actor filter: %d %s", w.Code, w.Body)
	}
}

// readCSV parses an export as RFC 4180 and returns its records after the header.
func readCSV(t *testing.T, body []byte) [][]string {
	t.Helper()
	if !bytes.HasSuffix(body, []byte("\r\n")) {
		t.Fatalf("CSV does not end with CRLF")
	}
	r := csv.NewReader(bytes.NewReader(body))
	r.FieldsPerRecord = len(CSVColumns)
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("CSV: %v", err)
	}
	if strings.Join(recs[0], ",") != strings.Join(CSVColumns, ",") {
		t.Fatalf("header %v", recs[0])
	}
	return recs[1:]
}

func TestExportCSV(t *testing.T) {
	events := testEvents(600)
	// One event with text that needs quoting: a comma, a quote, a newline and non-ASCII.
	odd := &events[5]
	odd.Actor.ID = "Zoë \"ops\", team\nline two"
	odd.Metadata = json.RawMessage(`{"workflow.name": "a,b \"c\" ünï"}`)
	odd.Seal()
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	for _, q := range []url.Values{
		{"format": {"csv"}},
		{"format": {"CSV"}, "sortOrder": {"ASC"}, "actorType": {chain.ActorUser}},
		{"format": {"csv"}, "eventType": {chain.WorkflowUpdated}, "result": {chain.ResultFailed}},
	} {
		w := env.get(t, ExportPath+"?"+q.Encode())
		if w.Code != 200 {
			t.Fatalf("%s: %d %s", q.Encode(), w.Code, w.Body)
		}
		if ct := w.Header().Get("Content-Type"); ct != "text/csv; charset=utf-8; header=present" {
			t.Fatalf("Content-Type %q", ct)
		}
		if w.Header().Get("X-Audit-Export-Verifiable") != "false" || !strings.Contains(w.Header().Get("Content-Disposition"), ".csv") {
			t.Fatalf("headers %v", w.Header())
		}
		f, order := filterOf(t, q)
		want := bruteForce(events, f, order)
		recs := readCSV(t, w.Body.Bytes())
		if len(recs) != len(want) {
			t.Fatalf("%s: %d rows, want %d", q.Encode(), len(recs), len(want))
		}
		for i, rec := range recs {
			e := want[i]
			got := map[string]string{}
			for j, c := range CSVColumns {
				got[c] = rec[j]
			}
			ctx := string(e.Context)
			if ctx == "" {
				ctx = "{}"
			}
			meta := string(e.Metadata)
			if meta == "" {
				meta = "{}"
			}
			for k, v := range map[string]string{"eventId": e.EventID, "actorId": e.Actor.ID, "actorType": e.Actor.Type,
				"actorIpAddress": e.Actor.IPAddress, "context": ctx, "metadata": meta, "hash": e.Hash, "previousHash": e.PreviousHash,
				"timestamp": e.Timestamp.Format(chain.TimestampLayout), "sequence": strconv.FormatUint(e.Sequence, 10), "chainId": e.ChainID} {
				if got[k] != v {
					t.Fatalf("%s row %d column %s: %q, want %q", q.Encode(), i, k, got[k], v)
				}
			}
		}
	}
}

// filterOf mirrors the API's parsing for the simple parameters the export tests use.
func filterOf(t *testing.T, q url.Values) (sink.Filter, sink.Order) {
	t.Helper()
	f := sink.Filter{EventType: q.Get("eventType"), Action: q.Get("action"), Result: q.Get("result"),
		ResourceType: q.Get("resourceType"), ResourceID: q.Get("resourceId"), ActorType: q.Get("actorType"), ActorID: q.Get("actorId")}
	for _, p := range []struct {
		name string
		dst  *time.Time
	}{{"dateFrom", &f.From}, {"dateTo", &f.To}} {
		if s := q.Get(p.name); s != "" {
			v, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				t.Fatal(err)
			}
			*p.dst = v
		}
	}
	order := sink.Desc
	if strings.EqualFold(q.Get("sortOrder"), "ASC") {
		order = sink.Asc
	}
	return f, order
}

// ndjsonEvents returns the event lines of an NDJSON export.
func ndjsonEvents(t *testing.T, body []byte) []chain.Event {
	t.Helper()
	var out []chain.Event
	for _, l := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		if bytes.HasPrefix(l, []byte(`{"export`)) {
			continue
		}
		var e chain.Event
		if err := json.Unmarshal(l, &e); err != nil {
			t.Fatalf("event line: %v: %s", err, l)
		}
		out = append(out, e)
	}
	return out
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExportNDJSONVerifies(t *testing.T) {
	events := testEvents(900)
	a := chainEvents(events, "chain-a")
	// A signed checkpoint log: chain-a signed at its 200th event and at its last, chain-b at its 10th.
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	signer := checkpoint.NewSigner(ed25519.NewKeyFromSeed(seed))
	pub := signer.Public()
	var log bytes.Buffer
	sign := func(e chain.Event) checkpoint.Checkpoint {
		c, err := signer.Sign(e.ChainID, e.Sequence, e.Hash, e.Timestamp.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(c)
		log.Write(append(b, '\n'))
		return c
	}
	b := chainEvents(events, "chain-b")
	sign(b[9])
	cpA := sign(a[199])
	cpLast := sign(a[len(a)-1])
	logPath := writeTemp(t, "checkpoints.ndjson", log.Bytes())
	env := newTestAPI(t, auditapitest.NewStore(events...), func(o *Options) { o.CheckpointLog = logPath })

	export := func(t *testing.T, q url.Values) (string, []byte) {
		t.Helper()
		q.Set("format", "ndjson")
		w := env.get(t, ExportPath+"?"+q.Encode())
		if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-ndjson" || w.Header().Get("X-Audit-Export-Verifiable") != "true" {
			t.Fatalf("%s: %d %v %s", q.Encode(), w.Code, w.Header(), w.Body)
		}
		return writeTemp(t, "export.ndjson", w.Body.Bytes()), w.Body.Bytes()
	}
	verify := func(t *testing.T, path string) *exportfile.Result {
		t.Helper()
		res, err := exportfile.Verify(path, []ed25519.PublicKey{pub}, "")
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	t.Run("whole trail, both orders: every chain contiguous and signed", func(t *testing.T) {
		for _, order := range []string{"ASC", "DESC"} {
			path, body := export(t, url.Values{"sortOrder": {order}})
			f, o := filterOf(t, url.Values{"sortOrder": {order}})
			sameIDs(t, order, ndjsonEvents(t, body), bruteForce(events, f, o))
			res := verify(t, path)
			if !res.Valid() || !res.Header.Contiguous || len(res.Chains) != 3 {
				t.Fatalf("%s: %+v", order, res)
			}
			for _, c := range res.Chains {
				if !c.Contiguous || c.Hashed != c.Events || c.Links != c.Events-1 {
					t.Fatalf("%s: chain %+v", order, c)
				}
			}
			if got := res.Chains[0].Checkpoint; !strings.Contains(got, "checkpoint at sequence "+strconv.FormatUint(cpLast.Sequence, 10)) ||
				!strings.Contains(got, "signature valid") || !strings.Contains(got, "are the signed chain") {
				t.Fatalf("%s chain-a checkpoint: %q", order, got)
			}
			if got := res.Chains[2].Checkpoint; got != "no signed checkpoint in the export" {
				t.Fatalf("chain-c: %q", got)
			}
		}
	})
	t.Run("time range: contiguous, checkpoint inside the range", func(t *testing.T) {
		q := url.Values{"dateFrom": {a[150].Timestamp.Format(time.RFC3339Nano)}, "dateTo": {a[250].Timestamp.Format(time.RFC3339Nano)}, "sortOrder": {"ASC"}}
		path, _ := export(t, q)
		res := verify(t, path)
		if !res.Valid() || !res.Header.Contiguous {
			t.Fatalf("%+v", res)
		}
		if got := res.Chains[0].Checkpoint; !strings.Contains(got, "sequence "+strconv.FormatUint(cpA.Sequence, 10)) || !strings.Contains(got, "matches") {
			t.Fatalf("chain-a: %q", got)
		}
	})
	t.Run("filtered by actor or type: not a broken chain", func(t *testing.T) {
		for _, q := range []url.Values{
			{"actorType": {chain.ActorAPIKey}},
			{"actorId": {a[3].Actor.ID}, "sortOrder": {"ASC"}},
			{"eventType": {chain.WorkflowUpdated}},
		} {
			path, body := export(t, q)
			f, o := filterOf(t, q)
			sameIDs(t, q.Encode(), ndjsonEvents(t, body), bruteForce(events, f, o))
			res := verify(t, path)
			if !res.Valid() || res.Header.Contiguous {
				t.Fatalf("%s: %+v", q.Encode(), res)
			}
			for _, c := range res.Chains {
				if c.Hashed != c.Events {
					t.Fatalf("%s: %+v", q.Encode(), c)
				}
			}
		}
	})
	t.Run("tampering, cuts and gaps are found", func(t *testing.T) {
		_, body := export(t, url.Values{"sortOrder": {"ASC"}})
		lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
		join := func(ls [][]byte) []byte { return append(bytes.Join(ls, []byte("\n")), '\n') }
		// An edited field.
		edited := append([][]byte(nil), lines...)
		edited[10] = bytes.Replace(edited[10], []byte(`"result":"SUCCESS"`), []byte(`"result":"FAILED"`), 1)
		if bytes.Equal(edited[10], lines[10]) {
			edited[10] = bytes.Replace(edited[10], []byte(`"result":"FAILED"`), []byte(`"result":"SUCCESS"`), 1)
		}
		res := verify(t, writeTemp(t, "x", join(edited)))
		if res.Valid() || problem(res) != chain.ReasonHashMismatch {
			t.Fatalf("edited: %+v", res)
		}
		// A removed event line in a contiguous export: a gap (and the summary disagrees).
		removed := append(append([][]byte(nil), lines[:20]...), lines[21:]...)
		if res := verify(t, writeTemp(t, "x", join(removed))); res.Valid() || problem(res) != chain.ReasonGap {
			t.Fatalf("removed: %+v", res)
		}
		// Cut short: no end line.
		if res := verify(t, writeTemp(t, "x", join(lines[:len(lines)/2]))); res.Valid() || !strings.Contains(res.Problem, "cut short") {
			t.Fatalf("cut: %+v", res)
		}
		// Another key: the checkpoint signature fails.
		other := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize)).Public().(ed25519.PublicKey)
		path := writeTemp(t, "x", body)
		res, err := exportfile.Verify(path, []ed25519.PublicKey{other}, "")
		if err != nil || res.Valid() || problem(res) != chain.ReasonCheckpointMismatch {
			t.Fatalf("other key: %v %+v", err, res)
		}
		// No key: valid, and says the signature was not checked.
		res, err = exportfile.Verify(path, nil, "")
		if err != nil || !res.Valid() || !strings.Contains(res.Chains[0].Checkpoint, "not checked") {
			t.Fatalf("no key: %v %+v", err, res)
		}
	})
}

func problem(r *exportfile.Result) chain.Reason {
	for _, c := range r.Chains {
		if c.Problem != nil {
			return c.Problem.Reason
		}
	}
	return ""
}

// TestExportEveryEventOnce: exports partitioned by actor type, in both orders, hold every event
// exactly once.
func TestExportEveryEventOnce(t *testing.T) {
	events := testEvents(1500)
	env := newTestAPI(t, auditapitest.NewStore(events...), nil)
	for _, order := range []string{"ASC", "DESC"} {
		seen := map[string]int{}
		for _, typ := range chain.ActorTypes {
			w := env.get(t, ExportPath+"?format=ndjson&sortOrder="+order+"&actorType="+typ)
			for _, e := range ndjsonEvents(t, w.Body.Bytes()) {
				seen[e.EventID]++
			}
		}
		if len(seen) != len(events) {
			t.Fatalf("%s: %d distinct events, want %d", order, len(seen), len(events))
		}
		for id, n := range seen {
			if n != 1 {
				t.Fatalf("%s: %s exported %d times", order, id, n)
			}
		}
	}
}

func TestActorAuthColumn(t *testing.T) {
	for ctx, want := range map[string]string{
		`{"auth": {"method": "jwt", "verified": false, "detail": "no key"}}`: "jwt (unverified)",
		`{"auth": {"method": "jwt", "verified": true}}`:                      "jwt",
		`{"auth": {"method": "api_key", "verified": false}}`:                 "api_key",
		`{"auth": {"method": "anonymous", "verified": false}}`:               "anonymous",
		`{"outcome": "reconciled"}`:                                          "",
		``:                                                                   "",
	} {
		if got := ActorAuth([]byte(ctx)); got != want {
			t.Errorf("ActorAuth(%s) = %q, want %q", ctx, got, want)
		}
	}
}
