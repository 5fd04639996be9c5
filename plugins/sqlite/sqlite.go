// Package sqlite is the embedded default audit sink: it stores events in a local SQLite database
// (modernc.org/sqlite, pure Go, no cgo) and answers the audit API's searches from it, so the
// sidecar works with no server at all.
//
// Storage: one events table keyed by (chain_id, seq), one row per event with a column for every
// field (timestamp as UTC microseconds, context and metadata as the exact canonical jsonb text
// that was hashed), composite indexes that let every search shape page by keyset without sorting
// (see migrations), a chains summary table, and a meta table recording the schema version.
//
// Concurrency: the database runs in WAL mode. Writes go through one dedicated connection, one
// transaction per batch; reads use a separate pool of read-only connections and never wait for a
// writer. With synchronous "full" (the default) a Write that returned nil is durable.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	sqlitedrv "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/flowker-audit/flowker-audit/chain"
	"github.com/flowker-audit/flowker-audit/sink"
)

// Sink is the SQLite sink. It implements sink.Sink and sink.Querier. Create it with New.
type Sink struct {
	logger *slog.Logger
	batch  int        // events per retention block
	mu     sync.Mutex // serialises Configure and Close
	st     atomic.Pointer[store]
}

var (
	_ sink.Sink    = (*Sink)(nil)
	_ sink.Querier = (*Sink)(nil)
)

// Options configures New.
type Options struct {
	// Logger receives the sink's log lines (nil discards them). The bundled plugin passes the
	// logger whose lines the sidecar re-logs.
	Logger *slog.Logger
	// RetentionBatch is the most events one retention block deletes (0: DefaultRetentionBatch).
	RetentionBatch int
}

// New returns an unconfigured SQLite sink; call Configure before anything else.
func New(o Options) *Sink {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	batch := o.RetentionBatch
	if batch <= 0 {
		batch = DefaultRetentionBatch
	}
	return &Sink{logger: log, batch: batch}
}

// ValidateConfig reports every problem in config without opening anything.
func (s *Sink) ValidateConfig(config []byte) error {
	_, err := ParseConfig(config)
	return err
}

// Configure validates config and opens (creating or migrating) the database.
func (s *Sink) Configure(ctx context.Context, config []byte) error {
	cfg, err := ParseConfig(config)
	if err != nil {
		return sink.Permanent(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Load() != nil {
		return sink.Permanentf("sqlite sink: already configured")
	}
	st, err := openStore(ctx, cfg, s.logger)
	if err != nil {
		return err
	}
	s.st.Store(st)
	return nil
}

// Capabilities reports that the sink accepts writes and answers queries.
func (s *Sink) Capabilities(context.Context) (sink.Capabilities, error) {
	return sink.Capabilities{Write: true, Query: true}, nil
}

// Close checkpoints the WAL and closes the database. Further calls fail.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st.Swap(nil)
	if st == nil {
		return nil
	}
	return st.close(ctx)
}

var errNotConfigured = errors.New("sqlite sink: not configured, or closed")

func (s *Sink) store() (*store, error) {
	st := s.st.Load()
	if st == nil {
		return nil, errNotConfigured
	}
	return st, nil
}

// Write stores a batch in one transaction. Events already stored under the same (chainId,
// sequence) with the same hash are skipped; a different hash there, or an eventId already used by
// another position, fails the whole batch with a permanent error and stores nothing of it.
func (s *Sink) Write(ctx context.Context, events []chain.Event) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	return st.write(ctx, events)
}

// Head returns the highest stored sequence of chainID and its hash.
func (s *Sink) Head(ctx context.Context, chainID string) (sink.Head, error) {
	st, err := s.store()
	if err != nil {
		return sink.Head{}, err
	}
	return st.head(ctx, chainID)
}

// Search returns one page of events matching q.
func (s *Sink) Search(ctx context.Context, q sink.Query) (sink.Page, error) {
	st, err := s.store()
	if err != nil {
		return sink.Page{}, err
	}
	return st.search(ctx, q)
}

// Get returns the event with eventID, or an error wrapping sink.ErrNotFound.
func (s *Sink) Get(ctx context.Context, eventID string) (chain.Event, error) {
	st, err := s.store()
	if err != nil {
		return chain.Event{}, err
	}
	return st.get(ctx, eventID)
}

// ReadChain calls fn for each stored event of chainID with from <= sequence <= to (to == 0: no
// upper bound), in sequence order. It reads in bounded chunks, so memory stays small and no read
// transaction stays open while fn runs.
func (s *Sink) ReadChain(ctx context.Context, chainID string, from, to uint64, fn func(*chain.Event) error) error {
	st, err := s.store()
	if err != nil {
		return err
	}
	return st.readChain(ctx, chainID, from, to, fn)
}

// Chains lists the stored chains.
func (s *Sink) Chains(ctx context.Context) ([]sink.ChainInfo, error) {
	st, err := s.store()
	if err != nil {
		return nil, err
	}
	return st.chains(ctx)
}

// store is an open database: one writer connection and a pool of read-only connections.
type store struct {
	cfg    Config
	logger *slog.Logger
	w      *sql.DB
	r      *sql.DB

	insert, existing, upsertChain *sql.Stmt // writer
	headStmt, getStmt             *sql.Stmt // readers
	readChainStmt, chainsStmt     *sql.Stmt // readers
	searches                      stmtCache // readers, keyed by SQL text
}

// readers is the size of the read pool.
func readers() int { return min(4, max(2, runtime.GOMAXPROCS(0))) }

// dsn builds a modernc.org/sqlite data source name: the file path, then pragmas applied to every
// new connection of the pool.
func dsn(cfg Config, writer bool, cacheKiB int) string {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout("+strconv.FormatInt(cfg.BusyTimeout.D().Milliseconds(), 10)+")")
	q.Add("_pragma", "cache_size(-"+strconv.Itoa(cacheKiB)+")")
	if writer {
		q.Add("_pragma", "journal_mode(WAL)")
		q.Add("_pragma", "synchronous("+strings.ToUpper(cfg.Synchronous)+")")
		q.Add("_pragma", "journal_size_limit(67108864)")
		q.Set("_txlock", "immediate")
	} else {
		q.Add("_pragma", "query_only(1)")
	}
	return cfg.Path + "?" + q.Encode()
}

func openStore(ctx context.Context, cfg Config, logger *slog.Logger) (_ *store, err error) {
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite sink: create directory of %s: %w", cfg.Path, err)
		}
	}
	// The writer gets half of the cache budget (it inserts into eight b-trees at random places);
	// the readers share the other half.
	n := readers()
	writerKiB := max(1024, cfg.CacheSizeMiB*1024/2)
	readerKiB := max(1024, cfg.CacheSizeMiB*1024/2/n)
	st := &store{cfg: cfg, logger: logger}
	defer func() {
		if err != nil {
			_ = st.closeDBs()
		}
	}()

	st.w, err = sql.Open("sqlite", dsn(cfg, true, writerKiB))
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: open %s: %w", cfg.Path, err)
	}
	st.w.SetMaxOpenConns(1)
	st.w.SetMaxIdleConns(1)
	st.w.SetConnMaxLifetime(0)
	st.w.SetConnMaxIdleTime(0)
	if err := st.w.PingContext(ctx); err != nil {
		return nil, classifyOpen(cfg.Path, err)
	}
	var mode string
	if err := st.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return nil, classifyOpen(cfg.Path, err)
	}
	if !strings.EqualFold(mode, "wal") {
		return nil, sink.Permanentf("sqlite sink: %s: journal mode is %q, WAL could not be enabled", cfg.Path, mode)
	}
	from, err := migrate(ctx, st.w)
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: %s: %w", cfg.Path, err)
	}

	st.r, err = sql.Open("sqlite", dsn(cfg, false, readerKiB))
	if err != nil {
		return nil, fmt.Errorf("sqlite sink: open %s for reading: %w", cfg.Path, err)
	}
	st.r.SetMaxOpenConns(n)
	st.r.SetMaxIdleConns(n)
	st.r.SetConnMaxLifetime(0)
	st.r.SetConnMaxIdleTime(0)
	if err := st.r.PingContext(ctx); err != nil {
		return nil, classifyOpen(cfg.Path, err)
	}
	if err := st.prepare(ctx); err != nil {
		return nil, err
	}
	logger.LogAttrs(ctx, slog.LevelInfo, "sqlite sink opened",
		slog.String("path", cfg.Path), slog.Int("schema_version", SchemaVersion()), slog.Int("previous_schema_version", from),
		slog.String("synchronous", cfg.Synchronous), slog.Int("readers", n))
	return st, nil
}

// classifyOpen marks errors that retrying cannot fix as permanent.
func classifyOpen(path string, err error) error {
	var se *sqlitedrv.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM, sqlite3.SQLITE_READONLY:
			return sink.Permanent(fmt.Errorf("sqlite sink: open %s: %w", path, err))
		}
	}
	return fmt.Errorf("sqlite sink: open %s: %w", path, err)
}

func (st *store) prepare(ctx context.Context) error {
	for _, p := range []struct {
		db   *sql.DB
		dst  **sql.Stmt
		text string
	}{
		{st.w, &st.insert, insertSQL},
		{st.w, &st.existing, `SELECT hash FROM events WHERE chain_id = ? AND seq = ?`},
		{st.w, &st.upsertChain, upsertChainSQL},
		{st.r, &st.headStmt, `SELECT seq, hash FROM events WHERE chain_id = ? ORDER BY seq DESC LIMIT 1`},
		{st.r, &st.getStmt, `SELECT ` + eventColumns + ` FROM events WHERE event_id = ?`},
		{st.r, &st.readChainStmt, `SELECT ` + eventColumns + ` FROM events WHERE chain_id = ? AND seq >= ? AND seq <= ? ORDER BY seq LIMIT ?`},
		{st.r, &st.chainsStmt, `SELECT chain_id, event_count, first_seq, last_seq FROM chains ORDER BY chain_id`},
	} {
		stmt, err := p.db.PrepareContext(ctx, p.text)
		if err != nil {
			return fmt.Errorf("sqlite sink: prepare %q: %w", p.text, err)
		}
		*p.dst = stmt
	}
	return nil
}

func closeStmts(stmts ...**sql.Stmt) error {
	var errs []error
	for _, s := range stmts {
		if *s != nil {
			errs = append(errs, (*s).Close())
			*s = nil
		}
	}
	return errors.Join(errs...)
}

// closeReaders closes the read pool and its statements.
func (st *store) closeReaders() error {
	errs := []error{closeStmts(&st.headStmt, &st.getStmt, &st.readChainStmt, &st.chainsStmt), st.searches.close()}
	if st.r != nil {
		errs = append(errs, st.r.Close())
		st.r = nil
	}
	return errors.Join(errs...)
}

// closeDBs closes everything that is open.
func (st *store) closeDBs() error {
	errs := []error{st.closeReaders(), closeStmts(&st.insert, &st.existing, &st.upsertChain)}
	if st.w != nil {
		errs = append(errs, st.w.Close())
		st.w = nil
	}
	return errors.Join(errs...)
}

func (st *store) close(ctx context.Context) error {
	// Readers first, so the checkpoint can copy the whole WAL back and truncate it.
	errs := []error{st.closeReaders()}
	if _, err := st.w.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		st.logger.LogAttrs(ctx, slog.LevelWarn, "sqlite sink: checkpoint on close failed", slog.String("error", err.Error()))
	}
	errs = append(errs, st.closeDBs())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite sink: close %s: %w", st.cfg.Path, err)
	}
	return nil
}
