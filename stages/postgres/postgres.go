// Package postgres is a Causeway batch handler that writes batches into a
// PostgreSQL table with pgx.
//
// Each batch is COPY'd into a temporary staging table and moved into the
// target table with INSERT … ON CONFLICT DO NOTHING, in one transaction:
// replaying a batch, or a stream that repeats messages, inserts nothing new.
// Transient failures (connection refused or lost, server shutting down,
// serialization failures) are retried with capped exponential back-off. A
// data error (a value Postgres rejects, such as a NUL character in JSON) is
// isolated by splitting the batch and retrying the halves, so only the bad
// rows fail, each with a *RowError carrying Postgres' error.
//
// TxSink is the transactional sibling for a Kafka source: the caller's
// Apply writes through the transaction that also stores the consumed
// offsets, so results are exactly once (see TxSink); AddCounts adds
// windowed counts (stages/window) in it.
//
// The sink knows nothing of the data it writes: the caller describes the
// table (name, columns, conflict key, the statements that create or migrate
// it) and maps each message to a row (Config.Row).
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/causeway-go/causeway/stages"
)

// Config configures a Sink that writes messages of type T.
type Config[T any] struct {
	// Pool is the connection pool the sink writes through. Either Pool or
	// URL is required; a pool the sink creates from URL is closed by Close,
	// a Pool given here is not.
	Pool *pgxpool.Pool
	// URL is a connection string (postgres://...), used when Pool is nil.
	URL string
	// Table is the target table, optionally schema-qualified ("tweets",
	// "public.tweets"). Required. For idempotence it needs a primary key or
	// unique constraint: rows that conflict with it are skipped.
	Table string
	// Columns are the target columns Row fills, in order. Required.
	Columns []string
	// Row returns a message's values for Columns. An error fails that
	// message alone, with a *RowError; the rest of the batch is written.
	// Required.
	Row func(m *stages.Message[T]) ([]any, error)
	// ConflictKey names the columns of the primary key or unique
	// constraint that makes a row a repeat: a row conflicting on it is
	// skipped (ON CONFLICT (ConflictKey) DO NOTHING), while a violation of
	// any other constraint fails that row. Empty: a row conflicting with
	// any unique constraint is skipped (ON CONFLICT DO NOTHING).
	ConflictKey []string
	// Migrate, if set, runs once in New before anything else, in a
	// transaction holding an advisory lock on the table name, so that
	// instances starting together do not race: statements such as
	// CREATE TABLE IF NOT EXISTS, ALTER TABLE … ADD COLUMN IF NOT EXISTS.
	Migrate []string
	// Retry bounds the retries of transient errors.
	Retry Retry
	// Logger receives retry and isolation logs. Default slog.Default().
	Logger *slog.Logger
}

// Retry is how a sink retries a transaction that failed for a transient
// reason. Zero fields take the defaults.
type Retry struct {
	// Attempts is the most tries of one transaction, the first included.
	// Default 10.
	Attempts int
	// Backoff is the wait before the first retry; it doubles after each,
	// with ±25% jitter. Default 100ms.
	Backoff time.Duration
	// MaxBackoff caps the wait. Default 2s.
	MaxBackoff time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.Attempts == 0 {
		r.Attempts = 10
	}
	if r.Backoff == 0 {
		r.Backoff = 100 * time.Millisecond
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 2 * time.Second
	}
	return r
}

// wait returns the back-off before try attempt+1.
func (r Retry) wait(attempt int) time.Duration {
	d := r.Backoff
	for i := 1; i < attempt && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	jitter := time.Duration(rand.Int64N(int64(d)/2+1)) - d/4
	return d + jitter
}

// Validate reports every field of c that is missing or out of range.
func (c *Config[T]) Validate() error {
	var errs []error
	if c.Pool == nil && c.URL == "" {
		errs = append(errs, errors.New("postgres: Config.Pool or Config.URL is required"))
	}
	if c.Table == "" {
		errs = append(errs, errors.New("postgres: Config.Table is required"))
	}
	if len(c.Columns) == 0 {
		errs = append(errs, errors.New("postgres: Config.Columns must name at least one column, got none"))
	}
	for i, col := range c.Columns {
		if col == "" {
			errs = append(errs, fmt.Errorf("postgres: Config.Columns[%d] is empty", i))
		}
	}
	if c.Row == nil {
		errs = append(errs, errors.New("postgres: Config.Row is required"))
	}
	for i, col := range c.ConflictKey {
		if col == "" {
			errs = append(errs, fmt.Errorf("postgres: Config.ConflictKey[%d] is empty", i))
		}
	}
	if r := c.Retry; r.Attempts < 0 || r.Backoff < 0 || r.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("postgres: Config.Retry must not be negative, got %d attempts, backoff %v, max %v",
			r.Attempts, r.Backoff, r.MaxBackoff))
	}
	return errors.Join(errs...)
}

// Sink is a batch handler writing into one table. Its HandleBatch is safe
// for concurrent use by several batch processors.
type Sink[T any] struct {
	pool     *pgxpool.Pool
	ownPool  bool
	name     string // the table as Config.Table names it
	table    pgx.Identifier
	columns  []string
	row      func(m *stages.Message[T]) ([]any, error)
	retry    Retry
	log      *slog.Logger
	stage    string // staging table name, in pg_temp
	createSt string // CREATE TEMP TABLE for the staging table
	moveSt   string // INSERT … SELECT … ON CONFLICT DO NOTHING
}

// New validates cfg, connects if needed, runs cfg.Migrate and returns the
// sink.
func New[T any](ctx context.Context, cfg Config[T]) (*Sink[T], error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Sink[T]{
		pool:    cfg.Pool,
		name:    cfg.Table,
		table:   parseIdentifier(cfg.Table),
		columns: append([]string(nil), cfg.Columns...),
		row:     cfg.Row,
		retry:   cfg.Retry.withDefaults(),
		log:     cfg.Logger,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("sink", "postgres", "table", cfg.Table)
	if s.pool == nil {
		pool, err := pgxpool.New(ctx, cfg.URL)
		if err != nil {
			return nil, fmt.Errorf("postgres: connect: %w", err)
		}
		s.pool, s.ownPool = pool, true
	}
	h := fnv.New32a()
	h.Write([]byte(cfg.Table))
	s.stage = fmt.Sprintf("causeway_stage_%08x", h.Sum32())
	target := s.table.Sanitize()
	cols := make([]string, len(s.columns))
	for i, c := range s.columns {
		cols[i] = pgx.Identifier{c}.Sanitize()
	}
	colList := strings.Join(cols, ", ")
	conflict := ""
	if len(cfg.ConflictKey) > 0 {
		keys := make([]string, len(cfg.ConflictKey))
		for i, c := range cfg.ConflictKey {
			keys[i] = pgx.Identifier{c}.Sanitize()
		}
		conflict = " (" + strings.Join(keys, ", ") + ")"
	}
	// The staging table has only the columns the sink writes, with the
	// target's types; ON COMMIT DELETE ROWS empties it after each batch.
	s.createSt = fmt.Sprintf(
		"CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT %s FROM %s WITH NO DATA",
		s.stage, colList, target)
	s.moveSt = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.%s ON CONFLICT%s DO NOTHING",
		target, colList, colList, s.stage, conflict)
	if len(cfg.Migrate) > 0 {
		if err := s.migrate(ctx, cfg.Table, cfg.Migrate); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// migrate runs stmts in one transaction under an advisory lock on the table
// name, retrying transient errors.
func (s *Sink[T]) migrate(ctx context.Context, table string, stmts []string) error {
	err := s.withRetry(ctx, "migrate", func(ctx context.Context) error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "causeway:"+table); err != nil {
				return err
			}
			for _, st := range stmts {
				if _, err := tx.Exec(ctx, st); err != nil {
					return fmt.Errorf("%s: %w", firstLine(st), err)
				}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate %s: %w", table, err)
	}
	return nil
}

// Pool returns the pool the sink writes through.
func (s *Sink[T]) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool if the sink created it. Batches are written within
// HandleBatch, so nothing is pending when the topology has drained.
func (s *Sink[T]) Close() error {
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// RowError is the error of a message whose row cannot be written however
// often it is tried: the row function failed, or Postgres rejected the row's
// values (a data exception or a constraint violation, SQLSTATE classes 22
// and 23). It is a permanent data error, unlike a lost connection or a
// server restart, which the sink retries: a dead-letter step finds it with
// errors.As. Err is the row function's error or Postgres' *pgconn.PgError.
type RowError struct {
	// Table is the target table, as Config.Table names it.
	Table string
	// Err is why the row was not written.
	Err error
}

func (e *RowError) Error() string {
	var pgErr *pgconn.PgError
	if errors.As(e.Err, &pgErr) {
		return "postgres: row rejected by " + e.Table + ": " + e.Err.Error()
	}
	return "postgres: row for " + e.Table + ": " + e.Err.Error()
}

// Unwrap returns why the row was not written.
func (e *RowError) Unwrap() error { return e.Err }

// Permanent reports true: writing the row again does not help. It lets a
// dead-letter step tell permanent data errors of any sink apart by one
// method (interface{ Permanent() bool }) without importing this package.
func (e *RowError) Permanent() bool { return true }

// HandleBatch writes the batch's messages; it is a stages.BatchHandler.
// Messages whose row function fails, and rows Postgres rejects, are failed
// one by one with a *RowError; the rest are written. It returns an error (failing the whole
// batch) only when the table cannot be written at all: transient errors
// that outlast the retries, or errors that are not about the data (a
// missing table, a permission).
func (s *Sink[T]) HandleBatch(ctx context.Context, b *stages.Batch[T]) error {
	rows := make([][]any, 0, len(b.Messages))
	msgs := make([]*stages.Message[T], 0, len(b.Messages))
	for _, m := range b.Messages {
		vals, err := s.row(m)
		if err == nil && len(vals) != len(s.columns) {
			err = fmt.Errorf("row function returned %d values for %d columns", len(vals), len(s.columns))
		}
		if err != nil {
			m.Fail(&RowError{Table: s.name, Err: err})
			continue
		}
		rows = append(rows, vals)
		msgs = append(msgs, m)
	}
	if len(rows) == 0 {
		return nil
	}
	return s.write(ctx, rows, msgs)
}

// write writes rows in one transaction. On a data error it splits them in
// halves and writes each, down to the single rows Postgres rejects, which
// it fails with Postgres' error. Any other error ends the write: when the
// batch was split, the rows not written yet are failed with it; otherwise
// it is returned, failing the whole batch.
func (s *Sink[T]) write(ctx context.Context, rows [][]any, msgs []*stages.Message[T]) error {
	err := s.withRetry(ctx, "write", func(ctx context.Context) error { return s.copyMove(ctx, rows) })
	if err == nil {
		return nil
	}
	if !isDataError(err) {
		return fmt.Errorf("postgres: write batch of %d into %s: %w", len(rows), s.table.Sanitize(), err)
	}
	s.log.Debug("postgres: data error, isolating bad rows", "rows", len(rows), "err", err)
	s.isolate(ctx, rows, msgs, err)
	return nil
}

// isolate writes rows, which failed together with the data error err, by
// halves; it fails each row Postgres rejects on its own with that row's
// error, and every row it could not try with the error that stopped it.
func (s *Sink[T]) isolate(ctx context.Context, rows [][]any, msgs []*stages.Message[T], err error) (stop error) {
	if len(rows) == 1 {
		msgs[0].Fail(&RowError{Table: s.name, Err: err})
		return nil
	}
	half := len(rows) / 2
	for _, part := range [2][2]int{{0, half}, {half, len(rows)}} {
		r, m := rows[part[0]:part[1]], msgs[part[0]:part[1]]
		if stop != nil {
			for _, msg := range m {
				msg.Fail(stop)
			}
			continue
		}
		err := s.withRetry(ctx, "write", func(ctx context.Context) error { return s.copyMove(ctx, r) })
		switch {
		case err == nil:
		case isDataError(err):
			stop = s.isolate(ctx, r, m, err)
		default:
			stop = fmt.Errorf("postgres: write %d rows into %s: %w", len(r), s.table.Sanitize(), err)
			for _, msg := range m {
				msg.Fail(stop)
			}
		}
	}
	return stop
}

// copyMove runs one batch transaction: COPY into the staging table, then
// INSERT … ON CONFLICT DO NOTHING into the target. A connection left in a
// bad state is destroyed by the pool on release.
func (s *Sink[T]) copyMove(ctx context.Context, rows [][]any) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	staged := conn.Conn().PgConn().CustomData()
	tx, err := conn.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if staged[s.stage] == nil {
		if _, err := tx.Exec(ctx, s.createSt); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", s.stage}, s.columns, pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy into staging table: %w", err)
	}
	if _, err := tx.Exec(ctx, s.moveSt); err != nil {
		return fmt.Errorf("insert from staging table: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	staged[s.stage] = true
	return nil
}

// withRetry calls f until it succeeds, fails for a reason that is not
// transient, or has been tried s.retry.Attempts times.
func (s *Sink[T]) withRetry(ctx context.Context, what string, f func(context.Context) error) error {
	for attempt := 1; ; attempt++ {
		err := f(ctx)
		if err == nil || !IsTransient(err) || attempt >= s.retry.Attempts || ctx.Err() != nil {
			return err
		}
		d := s.retry.wait(attempt)
		s.log.Warn("postgres: transient error, retrying", "op", what, "attempt", attempt, "backoff", d, "err", err)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (while retrying: %w)", ctx.Err(), err)
		}
	}
}

// IsTransient reports whether err is worth retrying as is: the connection
// could not be made or was lost, the server is shutting down or starting,
// or the transaction lost a serialization or deadlock race. Errors about
// the data or the schema are not transient.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "40001", pgErr.Code == "40P01": // serialization failure, deadlock
			return true
		case pgErr.Code == "57P01", pgErr.Code == "57P02", pgErr.Code == "57P03": // admin/crash shutdown, cannot connect now
			return true
		case pgErr.Code == "53300": // too many connections
			return true
		}
		return false
	}
	if pgconn.SafeToRetry(err) {
		return true
	}
	var connErr *pgconn.ConnectError
	if errors.As(err, &connErr) {
		return true
	}
	if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	// A connection that died mid-transaction surfaces as an unexpected EOF
	// or a closed connection, not always wrapped as a net.Error.
	msg := err.Error()
	for _, s := range []string{"unexpected EOF", "conn closed", "connection reset", "broken pipe", "server closed the connection"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// isDataError reports whether Postgres rejected err's statement because of
// the values in it (SQLSTATE class 22, data exception, or 23, integrity
// constraint violation): what splitting a batch can isolate.
func isDataError(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	return strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23")
}

// parseIdentifier splits "schema.table" into its parts.
func parseIdentifier(name string) pgx.Identifier {
	return pgx.Identifier(strings.Split(name, "."))
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return s
}
