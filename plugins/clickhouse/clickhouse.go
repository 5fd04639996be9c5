// Package clickhouse is the ClickHouse sink plugin: the production store of audit events, and the
// query sink that serves the audit API.
//
// It speaks clickhouse-go's native protocol (the HTTP mode cannot talk to Debian's 18.16) and keeps
// one schema that runs unchanged on 18.16 and on current servers; modern-only improvements are
// applied after checking the server version (see DDL).
//
// Layout (database "audit" by default):
//   - audit_events: one row per event, ORDER BY (ts_us, chain_id, seq), monthly partitions,
//     index_granularity 1024, hashes as binary FixedString(32).
//   - audit_events_by_id and audit_events_by_resource: lookup tables kept by materialized views,
//     for eventId lookups and resourceId filters (18.16 has no skip indexes).
//   - audit_chain_blocks: per chain and block of 16384 sequences, the sequence and time range, the
//     row count and the hash of the highest sequence (an AggregatingMergeTree kept by a view). It
//     makes Head and Chains cheap and lets ReadChain read a chain in bounded windows.
//
// Writes are idempotent by (chainId, sequence): events at or below the stored head are skipped, a
// retried batch carries an insert_deduplication_token on modern servers, and every read removes
// duplicate (chain_id, seq) rows as a second safety net (18.16 cannot deduplicate plain MergeTree
// inserts). Reads follow the strategies measured on 18.16 at 10 M events: keyset pages inside a
// progressively widened time window, lookup tables then primary-key fetches, windowed chain reads.
package clickhouse

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Interface guards.
var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Querier = (*Sink)(nil)
)

// Options tune a Sink beyond its JSON configuration.
type Options struct {
	// Logger receives the plugin's logs (default: JSON on stderr, which go-plugin forwards to
	// the host's logger).
	Logger *slog.Logger
	// QueryHook, when set, is called with a short name and the exact SQL text of every statement
	// the sink sends (tests use it to replay the statements on a modern engine).
	QueryHook func(name, sql string)
}

// Sink stores audit events in ClickHouse. Create it with New or NewSink, then Configure it.
type Sink struct {
	log  *slog.Logger
	hook func(name, sql string)

	mu      sync.Mutex // guards everything below
	cfg     Config
	conn    driver.Conn
	version Version
	ready   bool
	heads   map[string]sink.Head // last written event per chain, known from this process
	unsure  map[string][]row     // per chain, rows of failed inserts whose lookups may be missing (heal.go)
	wm      watermarks           // delivery watermarks to publish (watermark.go)
	// wmMissing: the watermarks table does not exist (an administrator's older schema).
	wmMissing bool
	wmBusy    atomic.Bool // a background watermark publication runs (watermark.go)
}

// New returns an unconfigured ClickHouse sink; call Configure before anything else.
func New(o Options) *Sink {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sink{log: log.With("sink", "clickhouse"), hook: o.QueryHook, heads: map[string]sink.Head{},
		wm: watermarks{pending: map[string]int64{}}}
}

// ValidateConfig checks a configuration without connecting. It lists every problem with its key.
func (s *Sink) ValidateConfig(config []byte) error { return ValidateConfig(config) }

// Configure validates config, connects, and creates or checks the schema. A configuration
// problem or a missing permission is a permanent error; an unreachable server is retryable (and
// the sink keeps trying on later calls).
func (s *Sink) Configure(ctx context.Context, config []byte) error {
	cfg, err := parseConfig(config)
	if err != nil {
		return sink.Permanent(err)
	}
	tlsCfg, err := cfg.tlsConfig()
	if err != nil {
		return sink.Permanent(fmt.Errorf("tls: %w", err))
	}
	conn, err := openConn(cfg, cfg.Database, tlsCfg, s.log)
	if err != nil {
		return sink.Permanent(fmt.Errorf("open clickhouse connection: %w", err))
	}
	s.mu.Lock()
	if s.conn != nil {
		_ = s.conn.Close()
	}
	s.cfg, s.conn, s.ready = cfg, conn, false
	s.heads = map[string]sink.Head{}
	s.wmMissing = false
	s.mu.Unlock()
	s.log.Info("configured", "addr", cfg.Addr, "database", cfg.Database, "user", cfg.User,
		"tls", cfg.TLS.Enabled, "create_schema", cfg.CreateSchema, "compression", cfg.compressionMethod())
	_, err = s.ensureReady(ctx)
	return err
}

func openConn(cfg Config, database string, tlsCfg *tls.Config, log *slog.Logger) (driver.Conn, error) {
	method := ch.CompressionLZ4
	switch cfg.compressionMethod() {
	case "zstd":
		method = ch.CompressionZSTD
	case "none":
		method = ch.CompressionNone
	}
	return ch.Open(&ch.Options{
		Protocol: ch.Native,
		Addr:     cfg.Addr,
		Auth: ch.Auth{
			Database: database,
			Username: cfg.User,
			Password: cfg.password(),
		},
		TLS:              tlsCfg,
		DialTimeout:      time.Duration(cfg.DialTimeout),
		ReadTimeout:      time.Duration(cfg.ReadTimeout),
		Compression:      &ch.Compression{Method: method},
		MaxOpenConns:     8,
		MaxIdleConns:     4,
		ConnMaxLifetime:  time.Hour,
		ConnOpenStrategy: ch.ConnOpenInOrder,
		Logger:           log,
	})
}

// Capabilities reports that the sink accepts writes and answers queries.
func (s *Sink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true, Query: true}, nil
}

// Close releases the connection pool.
func (s *Sink) Close(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn, s.ready = nil, false
	if err != nil {
		return fmt.Errorf("close clickhouse connection: %w", err)
	}
	return nil
}

// state is what an operation needs, taken under the lock.
type state struct {
	conn    driver.Conn
	db      string
	l       Layout
	version Version
	maxExec int
	quorum  int
	// horizon: searches stop at the read horizon, after staleness chains drop out (watermark.go).
	horizon   bool
	staleness time.Duration
	// readTimeout is the client's read timeout (bounds a quorum insert's wait).
	readTimeout time.Duration
}

// ensureReady connects and prepares the schema once; later calls are cheap.
func (s *Sink) ensureReady(ctx context.Context) (state, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return state{}, sink.Permanentf("clickhouse sink used before Configure (or after Close)")
	}
	st := s.stateLocked()
	if s.ready {
		return st, nil
	}
	if err := s.initLocked(ctx); err != nil {
		return state{}, err
	}
	s.ready = true
	st.version = s.version
	return st, nil
}

func (s *Sink) stateLocked() state {
	return state{conn: s.conn, db: s.cfg.Database, l: s.cfg.layout(), version: s.version,
		maxExec: s.cfg.MaxExecutionTime, quorum: s.cfg.InsertQuorum,
		horizon: s.cfg.horizon() && !s.wmMissing, staleness: time.Duration(s.cfg.HorizonStaleness),
		readTimeout: time.Duration(s.cfg.ReadTimeout)}
}

func (s *Sink) initLocked(ctx context.Context) error {
	err := s.conn.Ping(ctx)
	if err != nil && exceptionCode(err) == codeUnknownDatabase && s.cfg.CreateSchema {
		// The database does not exist yet: create it through a connection without one.
		if err := s.createDatabase(ctx); err != nil {
			return err
		}
		err = s.conn.Ping(ctx)
	}
	if err != nil {
		return classify(fmt.Errorf("connect to clickhouse %v: %w", s.cfg.Addr, err))
	}
	sv, err := s.conn.ServerVersion()
	if err != nil {
		return classify(fmt.Errorf("read clickhouse server version: %w", err))
	}
	s.version = Version{int(sv.Version.Major), int(sv.Version.Minor), int(sv.Version.Patch)}
	st := s.stateLocked()
	if st.l.Cluster != "" {
		if err := s.checkCluster(ctx, st.conn); err != nil {
			return err
		}
	}
	if s.cfg.CreateSchema {
		if err := s.applySchema(ctx, st); err != nil {
			return err
		}
	} else if err := s.checkSchema(ctx, st); err != nil {
		return err
	}
	s.log.Info("clickhouse ready", "server_version", s.version.String(), "schema_variant", s.version.Variant(),
		"table", s.cfg.Table, "cluster", s.cfg.Cluster)
	return nil
}

func (s *Sink) createDatabase(ctx context.Context) error {
	tlsCfg, err := s.cfg.tlsConfig()
	if err != nil {
		return sink.Permanent(fmt.Errorf("tls: %w", err))
	}
	conn, err := openConn(s.cfg, "", tlsCfg, s.log)
	if err != nil {
		return sink.Permanent(fmt.Errorf("open clickhouse connection: %w", err))
	}
	defer conn.Close()
	if s.cfg.Cluster != "" {
		// Nothing is created before the cluster, its macros and ZooKeeper are known to work.
		if err := s.checkCluster(ctx, conn); err != nil {
			return err
		}
	}
	q := SchemaDDL(Legacy, s.cfg.layout())[0] // CREATE DATABASE IF NOT EXISTS, the same in every variant
	s.observe("ddl", q)
	if err := conn.Exec(ctx, q); err != nil {
		return classify(fmt.Errorf("create database %s: %w", s.cfg.Database, err))
	}
	return nil
}

func (s *Sink) applySchema(ctx context.Context, st state) error {
	current, err := s.schemaVersion(ctx, st)
	if err != nil {
		return err
	}
	if current > SchemaVersion {
		return sink.Permanentf("database %s has schema version %d, newer than this plugin's %d; upgrade the plugin",
			st.db, current, SchemaVersion)
	}
	// Tables that already exist (created by an earlier start or by an administrator from
	// deployments/clickhouse) need no DDL, so a user without DDL rights works with the default
	// create_schema too.
	missing, err := s.missingTables(ctx, st)
	if err != nil {
		return err
	}
	if len(missing) == 0 && current == SchemaVersion {
		return nil
	}
	if len(missing) > 0 {
		if err := s.runDDL(ctx, st); err != nil {
			if onlyOptional(st, missing) {
				// Only optional tables are new (an upgrade) and this user may not create them:
				// the events are unaffected.
				s.log.Warn("could not create optional tables", "error", err)
				s.noteOptionalMissing(st, missing)
				return nil
			}
			return err
		}
		if err := s.backfillByActor(ctx, st, missing); err != nil {
			return err
		}
	}
	variant := st.version.Variant()
	if len(missing) == 0 {
		variant = "preexisting" // created by an administrator; the file applied is unknown
	}
	if current < SchemaVersion {
		// INSERT ... SELECT: an INSERT ... VALUES sent with Exec waits forever for data on 18.16.
		q := fmt.Sprintf("INSERT INTO %s.%s (version, variant, server_version, applied_at) SELECT %d, %s, %s, toDateTime(%d, 'UTC')",
			quoteIdent(st.db), st.l.SchemaVersionTable(), SchemaVersion, quoteString(variant),
			quoteString(st.version.String()), time.Now().Unix())
		s.observe("schema_version_insert", q)
		if st.l.Cluster != "" { // through the Distributed table: synchronously, so it is there when we return
			ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
		}
		if err := st.conn.Exec(ctx, q); err != nil {
			return classify(fmt.Errorf("record schema version: %w", err))
		}
		s.log.Info("schema version recorded", "database", st.db, "version", SchemaVersion, "variant", variant)
	}
	return nil
}

func (s *Sink) runDDL(ctx context.Context, st state) error {
	for _, q := range SchemaDDL(st.version, st.l) {
		s.observe("ddl", q)
		if err := st.conn.Exec(ctx, q); err != nil {
			return classify(fmt.Errorf("apply schema (%s): %w", firstLine(q), err))
		}
	}
	return nil
}

// missingTables lists the required tables that do not exist.
func (s *Sink) missingTables(ctx context.Context, st state) ([]string, error) {
	var missing []string
	for _, t := range st.l.Tables() {
		ok, err := s.tableExists(ctx, st, t)
		if err != nil {
			return nil, err
		}
		if !ok {
			missing = append(missing, st.db+"."+t)
		}
	}
	return missing, nil
}

// schemaVersion returns the highest schema version recorded in the database (0 when none).
func (s *Sink) schemaVersion(ctx context.Context, st state) (uint32, error) {
	exists, err := s.tableExists(ctx, st, st.l.SchemaVersionTable())
	if err != nil || !exists {
		return 0, err
	}
	q := fmt.Sprintf("SELECT max(version) FROM %s.%s", quoteIdent(st.db), st.l.SchemaVersionTable())
	s.observe("schema_version", q)
	var v uint32
	if err := st.conn.QueryRow(ctx, q).Scan(&v); err != nil {
		return 0, classify(fmt.Errorf("read schema version: %w", err))
	}
	return v, nil
}

func (s *Sink) tableExists(ctx context.Context, st state, table string) (bool, error) {
	q := fmt.Sprintf("EXISTS TABLE %s.%s", quoteIdent(st.db), table)
	s.observe("exists", q)
	var n uint8
	if err := st.conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return false, classify(fmt.Errorf("check table %s.%s: %w", st.db, table, err))
	}
	return n == 1, nil
}

// onlyOptional reports whether missing (as listed by missingTables) holds only optional tables:
// the checkpoints and the watermarks tables (and, in a cluster, their local tables).
func onlyOptional(st state, missing []string) bool {
	if len(missing) == 0 {
		return false
	}
	for _, m := range missing {
		if !optionalTable(st, m) {
			return false
		}
	}
	return true
}

func optionalTable(st state, m string) bool {
	for _, t := range []string{st.l.Checkpoints(), st.l.Watermarks()} {
		if m == st.db+"."+t || m == st.db+"."+local(t) {
			return true
		}
	}
	return false
}

// noteOptionalMissing logs what a missing optional table costs; without the watermarks table
// the read horizon is off.
func (s *Sink) noteOptionalMissing(st state, missing []string) {
	for _, m := range missing {
		switch {
		case m == st.db+"."+st.l.Watermarks() || m == st.db+"."+local(st.l.Watermarks()):
			s.wmMissing = true
			if st.horizon {
				s.log.Warn("the watermarks table is missing: the read horizon is off, and paging while several sidecars write can skip events; apply the schema again as an administrator",
					"table", m)
			}
		default:
			s.log.Warn("the checkpoints table is missing: signed checkpoints are not kept in ClickHouse; apply deployments/clickhouse/schema.sql again as an administrator",
				"table", m)
		}
	}
}

// checkSchema verifies that an administrator created the schema (create_schema: false).
func (s *Sink) checkSchema(ctx context.Context, st state) error {
	missing, err := s.missingTables(ctx, st)
	if err != nil {
		return err
	}
	if onlyOptional(st, missing) {
		// Optional: without checkpoints the sink does not keep them (their writes fail and are
		// retried), without watermarks the read horizon is off; the events are unaffected.
		s.noteOptionalMissing(st, missing)
		missing = nil
	}
	if len(missing) > 0 {
		if st.l.Cluster != "" {
			return sink.Permanentf("create_schema is false but these tables are missing: %s; apply the output of `flowker-audit schema clickhouse --cluster %s --database %s --table %s` as an administrator (deployments/clickhouse/cluster)",
				strings.Join(missing, ", "), st.l.Cluster, st.db, st.l.Events())
		}
		return sink.Permanentf("create_schema is false but these tables are missing: %s; apply deployments/clickhouse/schema.sql (or schema-modern.sql) as an administrator",
			strings.Join(missing, ", "))
	}
	v, err := s.schemaVersion(ctx, st)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return sink.Permanentf("database %s has schema version %d, newer than this plugin's %d; upgrade the plugin", st.db, v, SchemaVersion)
	}
	return nil
}

func (s *Sink) observe(name, sql string) {
	if s.hook != nil {
		s.hook(name, sql)
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// readCtx adds the server-side execution limit to ctx.
func (st state) readCtx(ctx context.Context) context.Context {
	if st.maxExec <= 0 {
		return ctx
	}
	return ch.Context(ctx, ch.WithSettings(ch.Settings{"max_execution_time": st.maxExec})) // an int: 18.16 rejects strings
}

// ---------------------------------------------------------------------------------------------
// Writes

// row is one event in the column types of audit_events.
type row struct {
	chainID, eventType, action, result, resourceType, resourceID   string
	actorType, actorID, actorIP, context, metadata, hash, prevHash string
	seq                                                            uint64
	eventID                                                        uuid.UUID
	tsUs                                                           int64
}

var zeroHash = string(make([]byte, 32))

// toRow validates e and converts it. ClickHouse coerces silently (short FixedString values are
// zero-padded, UUID text is normalised), so anything that would not read back byte-identical is
// rejected here.
func toRow(e *chain.Event) (row, error) {
	var problems []string
	if e.ChainID == "" {
		problems = append(problems, "chainId is empty")
	}
	if e.Sequence == 0 {
		problems = append(problems, "sequence is 0")
	}
	id, err := uuid.Parse(e.EventID)
	if err != nil || id.String() != e.EventID {
		problems = append(problems, fmt.Sprintf("eventId %q is not a lowercase canonical UUID", e.EventID))
	}
	hash, ok := decodeHash(e.Hash)
	if !ok || e.Hash == "" {
		problems = append(problems, fmt.Sprintf("hash %q is not 64 lowercase hex digits", e.Hash))
	}
	prev := zeroHash
	if e.PreviousHash != "" {
		if prev, ok = decodeHash(e.PreviousHash); !ok || prev == zeroHash {
			problems = append(problems, fmt.Sprintf("previousHash %q is not 64 lowercase hex digits", e.PreviousHash))
		}
	}
	ts := e.Timestamp.UnixMicro()
	if e.Timestamp.IsZero() || ts < 0 || ts >= maxTimestampMicros {
		problems = append(problems, fmt.Sprintf("timestamp %s is outside 1970..2105", e.Timestamp.UTC().Format(time.RFC3339Nano)))
	}
	if len(problems) > 0 {
		return row{}, fmt.Errorf("event chain %q sequence %d: %s", e.ChainID, e.Sequence, strings.Join(problems, "; "))
	}
	return row{
		chainID: e.ChainID, seq: e.Sequence, eventID: id, tsUs: ts,
		eventType: e.EventType, action: e.Action, result: e.Result, resourceType: e.ResourceType, resourceID: e.ResourceID,
		actorType: e.Actor.Type, actorID: e.Actor.ID, actorIP: e.Actor.IPAddress,
		context: string(e.Context), metadata: string(e.Metadata), hash: hash, prevHash: prev,
	}, nil
}

// maxTimestampMicros is the first instant DateTime (UInt32 seconds) cannot hold, rounded down to
// a whole year: 2106-01-01.
const maxTimestampMicros = 4291747200 * 1_000_000

func decodeHash(h string) (string, bool) {
	if len(h) != 64 || strings.ToLower(h) != h {
		return "", false
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Write stores events with one INSERT. Events at or below the stored head of their chain are
// compared with what is stored: the same event is skipped (a retried or overlapping batch never
// adds a second copy), a missing one is inserted, and one stored with another hash fails the whole
// batch with sink.ErrConflict before anything is inserted: an event is never acknowledged as
// "already stored" unless it is.
func (s *Sink) Write(ctx context.Context, events []chain.Event) error {
	if len(events) == 0 {
		return nil
	}
	rows := make([]row, 0, len(events))
	var bad []error
	for i := range events {
		r, err := toRow(&events[i])
		if err != nil {
			bad = append(bad, err)
			if len(bad) == 10 {
				bad = append(bad, errors.New("(further invalid events not listed)"))
				break
			}
			continue
		}
		rows = append(rows, r)
	}
	if len(bad) > 0 {
		return sink.Permanent(fmt.Errorf("reject batch of %d events: %w", len(events), errors.Join(bad...)))
	}
	st, err := s.ensureReady(ctx)
	if err != nil {
		return err
	}

	// Skip what is already stored, per chain.
	chains := map[string]sink.Head{}
	for _, r := range rows {
		if _, ok := chains[r.chainID]; ok {
			continue
		}
		h, err := s.cachedHead(ctx, st, r.chainID)
		if err != nil {
			return err
		}
		chains[r.chainID] = h
	}
	kept := make([]row, 0, len(rows))
	var below []row // at or below the stored head: a replay, which must be the very same event
	for _, r := range rows {
		if h := chains[r.chainID]; !h.Found || r.seq > h.Sequence {
			kept = append(kept, r)
		} else {
			below = append(below, r)
		}
	}
	if len(below) > 0 {
		missing, err := s.checkStored(ctx, below)
		if err != nil {
			return err
		}
		kept = append(missing, kept...)
	}
	if len(kept) > 0 {
		if err := s.insert(ctx, st, kept); err != nil {
			s.forgetHeads(kept)
			s.noteUnsure(st, kept)
			return err
		}
		s.rememberHeads(kept)
	}
	if err := s.healPending(ctx, st); err != nil {
		return err
	}
	// Every row of the batch is stored now: its chains' watermarks advance (published in the
	// background at most every watermark_interval; a failure leaves them for the next batch or
	// heartbeat).
	s.noteWritten(rows)
	s.publishAfterWrite()
	return nil
}

// checkStored compares rows at or below their chain's head with the stored events at their
// sequences. It returns the rows that are not stored at all, and a conflict when a sequence is
// stored with another hash (or with several different rows).
func (s *Sink) checkStored(ctx context.Context, rows []row) ([]row, error) {
	type span struct{ lo, hi uint64 }
	spans := map[string]*span{}
	for _, r := range rows {
		if sp := spans[r.chainID]; sp == nil {
			spans[r.chainID] = &span{r.seq, r.seq}
		} else {
			sp.lo, sp.hi = min(sp.lo, r.seq), max(sp.hi, r.seq)
		}
	}
	type key struct {
		chain string
		seq   uint64
	}
	stored := map[key][]string{}
	for id, sp := range spans {
		err := s.ReadChain(ctx, id, sp.lo, sp.hi, func(e *chain.Event) error {
			k := key{id, e.Sequence}
			stored[k] = append(stored[k], e.Hash)
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	var missing []row
	for _, r := range rows {
		hashes := stored[key{r.chainID, r.seq}]
		if len(hashes) == 0 {
			missing = append(missing, r)
			continue
		}
		want := hashHex(r.hash)
		for _, h := range hashes {
			if h != want {
				return nil, sink.Conflictf("clickhouse sink: chain %s sequence %d is already stored with hash %s; the batch has %s (a forged, rewritten or duplicated row)",
					r.chainID, r.seq, h, want)
			}
		}
	}
	return missing, nil
}

func (s *Sink) insert(ctx context.Context, st state, rows []row) error {
	q := fmt.Sprintf("INSERT INTO %s.%s (%s)", quoteIdent(st.db), st.l.Events(), insertColumns)
	s.observe("insert", q)
	if settings := insertSettingsFor(st, rows); settings != nil {
		ctx = ch.Context(ctx, ch.WithSettings(settings))
	}
	batch, err := st.conn.PrepareBatch(ctx, q)
	if err != nil {
		return classify(fmt.Errorf("prepare insert of %d events: %w", len(rows), err))
	}
	defer batch.Abort() //nolint:errcheck // no-op after Send
	for i := range rows {
		r := &rows[i]
		if err := batch.Append(r.chainID, r.seq, r.eventID, r.tsUs, r.eventType, r.action, r.result, r.resourceType,
			r.resourceID, r.actorType, r.actorID, r.actorIP, r.context, r.metadata, r.hash, r.prevHash); err != nil {
			return sink.Permanent(fmt.Errorf("append event chain %q sequence %d: %w", r.chainID, r.seq, err))
		}
	}
	if err := batch.Send(); err != nil {
		return classify(fmt.Errorf("insert %d events: %w", len(rows), err))
	}
	return nil
}

// dedupToken names a batch by its chains and sequence ranges ("chainId:first-last", joined by ","),
// so that the same retried batch is deduplicated by modern servers.
func dedupToken(rows []row) string {
	type span struct{ first, last uint64 }
	spans := map[string]*span{}
	var order []string
	for _, r := range rows {
		sp, ok := spans[r.chainID]
		if !ok {
			spans[r.chainID] = &span{r.seq, r.seq}
			order = append(order, r.chainID)
			continue
		}
		sp.first, sp.last = min(sp.first, r.seq), max(sp.last, r.seq)
	}
	sort.Strings(order)
	parts := make([]string, len(order))
	for i, c := range order {
		parts[i] = fmt.Sprintf("%s:%d-%d", c, spans[c].first, spans[c].last)
	}
	return strings.Join(parts, ",")
}

func (s *Sink) cachedHead(ctx context.Context, st state, chainID string) (sink.Head, error) {
	s.mu.Lock()
	h, ok := s.heads[chainID]
	s.mu.Unlock()
	if ok {
		return h, nil
	}
	return s.loadHead(ctx, st, chainID)
}

// loadHead asks the server for chainID's head and caches it.
func (s *Sink) loadHead(ctx context.Context, st state, chainID string) (sink.Head, error) {
	h, err := s.head(ctx, st, chainID)
	if err != nil {
		return sink.Head{}, err
	}
	s.mu.Lock()
	s.heads[chainID] = h
	s.mu.Unlock()
	return h, nil
}

func (s *Sink) rememberHeads(rows []row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := map[string]*row{}
	for i := range rows {
		if l := last[rows[i].chainID]; l == nil || rows[i].seq > l.seq {
			last[rows[i].chainID] = &rows[i]
		}
	}
	for id, r := range last {
		if h := s.heads[id]; !h.Found || r.seq > h.Sequence {
			s.heads[id] = sink.Head{Found: true, Sequence: r.seq, Hash: hex.EncodeToString([]byte(r.hash))}
		}
	}
}

// forgetHeads drops cached heads after a failed insert: the server may or may not have stored
// the batch, so the next Write asks it again.
func (s *Sink) forgetHeads(rows []row) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rows {
		delete(s.heads, r.chainID)
	}
}

// Head returns the highest stored sequence of chainID and its hash. The summary table's claim
// is checked against the events table: a head sequence that no row holds (a summary row someone
// inserted), or that several different rows hold (an inserted duplicate), is a conflict.
func (s *Sink) Head(ctx context.Context, chainID string) (sink.Head, error) {
	st, err := s.ensureReady(ctx)
	if err != nil {
		return sink.Head{}, err
	}
	h, err := s.loadHead(ctx, st, chainID)
	if err != nil || !h.Found {
		return h, err
	}
	var hashes []string
	err = s.ReadChain(ctx, chainID, h.Sequence, h.Sequence, func(e *chain.Event) error {
		hashes = append(hashes, e.Hash)
		return nil
	})
	if err != nil {
		return sink.Head{}, err
	}
	if len(hashes) != 1 || hashes[0] != h.Hash {
		s.forgetHeads([]row{{chainID: chainID}}) // the next Write asks the server again
	}
	switch {
	case len(hashes) == 0:
		return sink.Head{}, sink.Conflictf("clickhouse sink: the summary table (%s) says chain %s reaches sequence %d, but no event row holds it: a forged or stale summary",
			st.l.ChainBlocks(), chainID, h.Sequence)
	case len(hashes) > 1:
		return sink.Head{}, sink.Conflictf("clickhouse sink: chain %s sequence %d is stored as %d different rows (hashes %s): an inserted duplicate",
			chainID, h.Sequence, len(hashes), strings.Join(hashes, ", "))
	case hashes[0] != h.Hash:
		return sink.Head{}, sink.Conflictf("clickhouse sink: the summary table says chain %s ends at sequence %d with hash %s, but its row has hash %s",
			chainID, h.Sequence, h.Hash, hashes[0])
	}
	return h, nil
}

// head reads the chain's summary rows in audit_chain_blocks: about one row per 16384 events and
// part, never the events themselves.
func (s *Sink) head(ctx context.Context, st state, chainID string) (sink.Head, error) {
	q := fmt.Sprintf("SELECT count(), maxMerge(max_seq), argMaxMerge(last_hash) FROM %s.%s WHERE chain_id = %s",
		quoteIdent(st.db), st.l.ChainBlocks(), quoteString(chainID))
	s.observe("head", q)
	var (
		n    uint64
		seq  uint64
		hash string
	)
	if err := st.conn.QueryRow(st.readCtx(ctx), q).Scan(&n, &seq, &hash); err != nil {
		return sink.Head{}, classify(fmt.Errorf("read head of chain %q: %w", chainID, err))
	}
	if n == 0 {
		return sink.Head{}, nil
	}
	return sink.Head{Found: true, Sequence: seq, Hash: hashHex(hash)}, nil
}

// hashHex renders a stored FixedString(32) hash; all zeros (no previous hash) is "".
func hashHex(b string) string {
	if b == zeroHash || b == "" {
		return ""
	}
	var buf [64]byte
	if len(b) != 32 {
		return hex.EncodeToString([]byte(b))
	}
	for i := 0; i < 32; i++ { // hex.Encode of the string's bytes without converting it first
		buf[2*i], buf[2*i+1] = hexDigits[b[i]>>4], hexDigits[b[i]&0xf]
	}
	return string(buf[:])
}

const hexDigits = "0123456789abcdef"

// ---------------------------------------------------------------------------------------------
// Errors

// ClickHouse error codes the sink treats specially.
const (
	codeUnknownTable         = 60
	codeUnknownDatabase      = 81
	codeReadonly             = 164
	codeUnknownUser          = 192
	codeWrongPassword        = 193
	codeRequiredPassword     = 194
	codeIPNotAllowed         = 195
	codeDatabaseAccessDenied = 291
	codeQueryProhibited      = 392 // DDL prohibited (allow_ddl = 0)
	codeNotEnoughPrivileges  = 497
	codeAuthFailed           = 516
)

func exceptionCode(err error) int32 {
	var exc *ch.Exception
	if errors.As(err, &exc) {
		return exc.Code
	}
	return 0
}

// classify marks errors that retrying cannot fix (authentication, permissions, a missing table
// or database) as permanent. Everything else, connection failures included, stays retryable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	switch exceptionCode(err) {
	case codeUnknownTable, codeUnknownDatabase, codeReadonly, codeUnknownUser, codeWrongPassword,
		codeRequiredPassword, codeIPNotAllowed, codeDatabaseAccessDenied, codeQueryProhibited,
		codeNotEnoughPrivileges, codeAuthFailed:
		return sink.Permanent(err)
	}
	return err
}

// insertSettingsFor returns the settings sent with an insert of rows: on modern servers, the
// batch's deduplication token, applied to the views' tables too (18.16 knows neither setting, and
// rejects string-valued settings from this driver); in a cluster, a synchronous insert through
// the Distributed table (the sink acknowledges only what a replica of the chain's shard has
// stored, never what waits in a local queue for a later send) and the configured quorum.
func insertSettingsFor(st state, rows []row) ch.Settings {
	settings := ch.Settings{}
	if st.version.IsModern() {
		settings["insert_deduplication_token"] = dedupToken(rows)
		settings["deduplicate_blocks_in_dependent_materialized_views"] = 1
	}
	if st.l.Cluster != "" {
		settings["insert_distributed_sync"] = 1
		if st.quorum > 0 {
			settings["insert_quorum"] = st.quorum
			// A replica killed (not stopped) counts as alive until its ZooKeeper session
			// expires, and an insert waits for its quorum up to insert_quorum_timeout (10
			// minutes by default): bound the wait below the read timeout, so the write fails as
			// retryable and the journal holds it instead.
			if st.readTimeout > 0 {
				settings["insert_quorum_timeout"] = int((st.readTimeout * 3 / 4).Milliseconds()) // an int: the driver refuses int64
			}
		}
	}
	if len(settings) == 0 {
		return nil
	}
	return settings
}
