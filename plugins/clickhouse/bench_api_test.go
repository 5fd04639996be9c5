package clickhouse

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/flowker-audit/flowker-audit/proxy/auditapi"
	"github.com/flowker-audit/flowker-audit/sink"
)

// shapeTarget is what queryShapes measures the search shapes through.
type shapeTarget interface {
	// search runs q and returns how many events the page holds.
	search(ctx context.Context, q sink.Query) (int, error)
	get(ctx context.Context, eventID string) error
}

// sinkTarget calls a querier directly: the store's own latency, without the HTTP and gRPC hops.
type sinkTarget struct{ q sink.Querier }

func (t sinkTarget) search(ctx context.Context, q sink.Query) (int, error) {
	p, err := t.q.Search(ctx, q)
	return len(p.Events), err
}

func (t sinkTarget) get(ctx context.Context, id string) error {
	_, err := t.q.Get(ctx, id)
	return err
}

// apiTarget sends each shape as an HTTP request to the audit API, which asks the bundled
// clickhouse plugin running as its own process (go-plugin, gRPC) as the sidecar does: the path
// an analyst's request takes, less the sidecar's listener and middleware.
type apiTarget struct {
	api    *auditapi.API
	base   string
	client *http.Client
}

const benchAPIKey = "bench-api-key-0123456789"

// newAPITarget starts the clickhouse plugin from FLOWKER_AUDIT_BIN (relative to the repository
// root, as bench.sh sets it) or a fresh build of cmd/flowker-audit, configures it with cfg, and
// serves the audit API over it on a loopback port.
func newAPITarget(b testing.TB, cfg map[string]any) *apiTarget {
	bin := os.Getenv("FLOWKER_AUDIT_BIN")
	switch {
	case bin == "":
		bin = filepath.Join(b.TempDir(), "flowker-audit")
		cmd := exec.Command("go", "build", "-o", bin, "./cmd/flowker-audit")
		cmd.Dir = filepath.Join("..", "..")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("building flowker-audit: %v\n%s", err, out)
		}
	case !filepath.IsAbs(bin):
		bin = filepath.Join("..", "..", bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := sink.Open(ctx, sink.LaunchOptions{Name: "clickhouse", Path: bin, Args: []string{"plugin", "clickhouse"},
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Kill)
	raw, err := json.Marshal(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := c.Configure(ctx, raw); err != nil {
		b.Fatalf("configuring the clickhouse plugin: %v", err)
	}
	keys, err := auditapi.NewStaticKeys([]string{benchAPIKey})
	if err != nil {
		b.Fatal(err)
	}
	api, err := auditapi.New(auditapi.Options{
		Querier:   func(context.Context) (sink.Querier, error) { return c, nil },
		Auth:      keys,
		CursorKey: []byte("bench-cursor-key-0123456789abcdef"),
	})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(api)
	b.Cleanup(srv.Close)
	return &apiTarget{api: api, base: srv.URL, client: srv.Client()}
}

func (t *apiTarget) search(ctx context.Context, q sink.Query) (int, error) {
	v := url.Values{}
	v.Set("limit", strconv.Itoa(q.Limit))
	for name, val := range map[string]string{"eventType": q.Filter.EventType, "resourceId": q.Filter.ResourceID,
		"actorType": q.Filter.ActorType, "actorId": q.Filter.ActorID} {
		if val != "" {
			v.Set(name, val)
		}
	}
	if !q.Filter.From.IsZero() {
		v.Set("dateFrom", q.Filter.From.UTC().Format(time.RFC3339Nano))
	}
	if !q.Filter.To.IsZero() {
		v.Set("dateTo", q.Filter.To.UTC().Format(time.RFC3339Nano))
	}
	if q.After != nil {
		cur, err := t.api.CursorAt(*q.After, q.Order)
		if err != nil {
			return 0, err
		}
		v.Set("cursor", cur)
	}
	var page struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := t.do(ctx, "/v1/audit-events?"+v.Encode(), &page); err != nil {
		return 0, err
	}
	return len(page.Items), nil
}

func (t *apiTarget) get(ctx context.Context, id string) error {
	var ev struct {
		EventID string `json:"eventId"`
	}
	if err := t.do(ctx, "/v1/audit-events/"+url.PathEscape(id), &ev); err != nil {
		return err
	}
	if ev.EventID != id {
		return fmt.Errorf("GET %s answered event %q", id, ev.EventID)
	}
	return nil
}

func (t *apiTarget) do(ctx context.Context, target string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.base+target, nil)
	if err != nil {
		return err
	}
	req.Header.Set(auditapi.HeaderAPIKey, benchAPIKey)
	resp, err := t.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", target, resp.Status, body)
	}
	return json.Unmarshal(body, into)
}
