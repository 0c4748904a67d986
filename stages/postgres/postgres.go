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
// it) and maps each message to a row (Config.Row). With Config.Update a
// conflicting row overwrites the stored one (an upsert); with Config.Also a
// message adds rows to further tables in the same transaction, so that rows
// derived from one another are stored together or not at all.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
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
	// With Also, nil means the message has no row in Table. Required.
	Row func(m *stages.Message[T]) ([]any, error)
	// ConflictKey names the columns of the primary key or unique
	// constraint that makes a row a repeat: a row conflicting on it is
	// skipped (ON CONFLICT (ConflictKey) DO NOTHING), while a violation of
	// any other constraint fails that row. Empty: a row conflicting with
	// any unique constraint is skipped (ON CONFLICT DO NOTHING).
	ConflictKey []string
	// Update, with ConflictKey, makes the sink upsert: a row conflicting
	// on ConflictKey overwrites these columns of the stored row (ON
	// CONFLICT (ConflictKey) DO UPDATE SET col = EXCLUDED.col) instead of
	// being skipped; of several rows of one batch with the same key, the
	// last is written. Each must be one of Columns.
	Update []string
	// Also are further tables a message may add a row to, written in the
	// same transaction as Table, after it and in order. Their rows are
	// idempotent in the same way (ConflictKey, Update).
	Also []Table[T]
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

// Table is a further table a Sink writes in the transaction of its main
// table (Config.Also).
type Table[T any] struct {
	// Name is the table, optionally schema-qualified. Required.
	Name string
	// Columns are the columns Row fills, in order. Required.
	Columns []string
	// Row returns a message's values for Columns, or nil when the message
	// has no row in this table. An error fails the message with a
	// *RowError: none of its rows, in any table, is written. Required.
	Row func(m *stages.Message[T]) ([]any, error)
	// ConflictKey and Update are as Config's.
	ConflictKey []string
	Update      []string
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
	errs = append(errs, validUpdate("Config", c.Columns, c.ConflictKey, c.Update)...)
	for i, t := range c.Also {
		field := fmt.Sprintf("Config.Also[%d]", i)
		if t.Name == "" {
			errs = append(errs, fmt.Errorf("postgres: %s.Name is required", field))
		}
		if len(t.Columns) == 0 {
			errs = append(errs, fmt.Errorf("postgres: %s.Columns must name at least one column, got none", field))
		}
		if t.Row == nil {
			errs = append(errs, fmt.Errorf("postgres: %s.Row is required", field))
		}
		errs = append(errs, validUpdate(field, t.Columns, t.ConflictKey, t.Update)...)
	}
	if r := c.Retry; r.Attempts < 0 || r.Backoff < 0 || r.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("postgres: Config.Retry must not be negative, got %d attempts, backoff %v, max %v",
			r.Attempts, r.Backoff, r.MaxBackoff))
	}
	return errors.Join(errs...)
}

// validUpdate checks that Update goes with a ConflictKey and names columns.
func validUpdate(field string, columns, key, update []string) []error {
	if len(update) == 0 {
		return nil
	}
	var errs []error
	if len(key) == 0 {
		errs = append(errs, fmt.Errorf("postgres: %s.Update needs a ConflictKey to know which row to update", field))
	}
	for _, col := range slices.Concat(key, update) {
		if !slices.Contains(columns, col) {
			errs = append(errs, fmt.Errorf("postgres: %s.ConflictKey and Update: %q is not one of Columns", field, col))
		}
	}
	return errs
}

// Sink is a batch handler writing into one table (and the tables of
// Config.Also). Its HandleBatch is safe for concurrent use by several batch
// processors.
type Sink[T any] struct {
	pool    *pgxpool.Pool
	ownPool bool
	name    string // the table as Config.Table names it
	table   pgx.Identifier
	columns []string
	row     func(m *stages.Message[T]) ([]any, error)
	retry   Retry
	log     *slog.Logger
	tables  []*target // the main table first, then Config.Also's
	also    []func(m *stages.Message[T]) ([]any, error)
	direct  struct {
		conflicts atomic.Int64 // direct COPYs that conflicted and were staged instead
	}
}

// StagedBatches returns how many batches (or parts of batches, while bad
// rows are isolated) conflicted with rows stored already and were written
// through the staging table instead of straight into the target.
func (s *Sink[T]) StagedBatches() int64 { return s.direct.conflicts.Load() }

// direct reports whether batches may be copied straight into the table:
// one table, no upsert (an upsert always goes through the staging table).
func (s *Sink[T]) directOK() bool {
	return len(s.tables) == 1 && len(s.tables[0].keyIdx) == 0
}

// target is one table a sink writes and its statements.
type target struct {
	name     string
	ident    pgx.Identifier
	columns  []string
	keyIdx   []int  // ConflictKey's indexes in columns, when upserting
	stage    string // staging table name, in pg_temp
	createSt string // CREATE TEMP TABLE for the staging table
	moveSt   string // INSERT … SELECT … ON CONFLICT DO NOTHING (or DO UPDATE)
}

func newTarget(name string, columns, key, update []string) *target {
	t := &target{name: name, ident: parseIdentifier(name), columns: append([]string(nil), columns...)}
	h := fnv.New32a()
	h.Write([]byte(name))
	t.stage = fmt.Sprintf("causeway_stage_%08x", h.Sum32())
	quote := func(cols []string) []string {
		out := make([]string, len(cols))
		for i, c := range cols {
			out[i] = pgx.Identifier{c}.Sanitize()
		}
		return out
	}
	colList := strings.Join(quote(columns), ", ")
	conflict := " DO NOTHING"
	if len(key) > 0 {
		conflict = " (" + strings.Join(quote(key), ", ") + ") DO NOTHING"
	}
	if len(update) > 0 {
		sets := quote(update)
		for i, c := range sets {
			sets[i] = c + " = EXCLUDED." + c
		}
		conflict = " (" + strings.Join(quote(key), ", ") + ") DO UPDATE SET " + strings.Join(sets, ", ")
		for _, k := range key {
			t.keyIdx = append(t.keyIdx, slices.Index(columns, k))
		}
	}
	// The staging table has only the columns the sink writes, with the
	// target's types; ON COMMIT DELETE ROWS empties it after each batch.
	t.createSt = fmt.Sprintf(
		"CREATE TEMP TABLE IF NOT EXISTS %s ON COMMIT DELETE ROWS AS SELECT %s FROM %s WITH NO DATA",
		t.stage, colList, t.ident.Sanitize())
	t.moveSt = fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM pg_temp.%s ON CONFLICT%s",
		t.ident.Sanitize(), colList, colList, t.stage, conflict)
	return t
}

// dedupe keeps, of rows with the same conflict key, the last: an upsert
// cannot touch one row twice in a statement.
func (t *target) dedupe(rows [][]any) [][]any {
	if len(t.keyIdx) == 0 || len(rows) < 2 {
		return rows
	}
	last := make(map[string]int, len(rows))
	for i, r := range rows {
		last[fmt.Sprintf("%#v", pick(r, t.keyIdx))] = i
	}
	if len(last) == len(rows) {
		return rows
	}
	out := make([][]any, 0, len(last))
	for i, r := range rows {
		if last[fmt.Sprintf("%#v", pick(r, t.keyIdx))] == i {
			out = append(out, r)
		}
	}
	return out
}

func pick(r []any, idx []int) []any {
	out := make([]any, len(idx))
	for i, j := range idx {
		out[i] = r[j]
	}
	return out
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
	s.tables = append(s.tables, newTarget(cfg.Table, cfg.Columns, cfg.ConflictKey, cfg.Update))
	for _, t := range cfg.Also {
		s.tables = append(s.tables, newTarget(t.Name, t.Columns, t.ConflictKey, t.Update))
		s.also = append(s.also, t.Row)
	}
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
	rows := make([]msgRows, 0, len(b.Messages))
	msgs := make([]*stages.Message[T], 0, len(b.Messages))
	for _, m := range b.Messages {
		r, err := s.rowsOf(m)
		if err != nil {
			m.Fail(err)
			continue
		}
		rows = append(rows, r)
		msgs = append(msgs, m)
	}
	if len(rows) == 0 {
		return nil
	}
	return s.write(ctx, rows, msgs)
}

// msgRows are one message's rows: its row of each of the sink's tables (nil
// for none), the main table's first.
type msgRows [][]any

// rowsOf returns m's rows, or the *RowError of the first row function that
// fails.
func (s *Sink[T]) rowsOf(m *stages.Message[T]) (msgRows, error) {
	r := make(msgRows, len(s.tables))
	for i, t := range s.tables {
		var vals []any
		var err error
		if i == 0 {
			if vals, err = s.row(m); err == nil && vals == nil && len(s.also) == 0 {
				err = errors.New("row function returned no values")
			}
		} else {
			vals, err = s.also[i-1](m)
		}
		if err == nil && vals != nil && len(vals) != len(t.columns) {
			err = fmt.Errorf("row function returned %d values for %d columns", len(vals), len(t.columns))
		}
		if err != nil {
			return nil, &RowError{Table: t.name, Err: err}
		}
		r[i] = vals
	}
	return r, nil
}

// write writes rows in one transaction. On a data error it splits them in
// halves and writes each, down to the single rows Postgres rejects, which
// it fails with Postgres' error. Any other error ends the write: when the
// batch was split, the rows not written yet are failed with it; otherwise
// it is returned, failing the whole batch.
func (s *Sink[T]) write(ctx context.Context, rows []msgRows, msgs []*stages.Message[T]) error {
	err := s.withRetry(ctx, "write", func(ctx context.Context) error { return s.store(ctx, rows) })
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
func (s *Sink[T]) isolate(ctx context.Context, rows []msgRows, msgs []*stages.Message[T], err error) (stop error) {
	// A COPY names the line (row) it stopped at: fail that row; the rows
	// before it passed, so write them again, and go on with the rows after
	// it. Each row is then copied about twice however many rows are bad,
	// rather than the whole batch once more per bad row.
	if n := copyLine(err); s.directOK() && n >= 1 && n <= len(rows) {
		msgs[n-1].Fail(&RowError{Table: s.name, Err: err})
		return s.writeParts(ctx, rows, msgs, [2][2]int{{0, n - 1}, {n, len(rows)}})
	}
	if len(rows) == 1 {
		msgs[0].Fail(&RowError{Table: s.name, Err: err})
		return nil
	}
	half := len(rows) / 2
	return s.writeParts(ctx, rows, msgs, [2][2]int{{0, half}, {half, len(rows)}})
}

// writeParts writes rows[from:to] for each part in turn, isolating the bad
// rows of a part that fails with a data error. Once a write fails for
// another reason, the rows of the parts after it are failed with that
// error, which it returns.
func (s *Sink[T]) writeParts(ctx context.Context, rows []msgRows, msgs []*stages.Message[T], parts [2][2]int) (stop error) {
	for _, part := range parts {
		r, m := rows[part[0]:part[1]], msgs[part[0]:part[1]]
		if len(r) == 0 {
			continue
		}
		if stop != nil {
			for _, msg := range m {
				msg.Fail(stop)
			}
			continue
		}
		err := s.withRetry(ctx, "write", func(ctx context.Context) error { return s.store(ctx, r) })
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

// store writes rows. A sink of one table without upserts copies them
// straight into the table first (one
// statement, atomic by itself, each row written once); when that COPY
// violates a unique or exclusion constraint (some rows are stored
// already, or repeat within the batch), by copyMove, which skips the
// repeats. A violation of another constraint fails copyMove again, as the
// data error it is.
func (s *Sink[T]) store(ctx context.Context, rows []msgRows) error {
	if !s.directOK() {
		return s.copyMove(ctx, rows)
	}
	main := make([][]any, len(rows))
	for i, r := range rows {
		main[i] = r[0]
	}
	_, err := s.pool.CopyFrom(ctx, s.table, s.columns, pgx.CopyFromRows(main))
	if err == nil || !isConflict(err) {
		if err != nil {
			err = fmt.Errorf("copy into table: %w", err)
		}
		return err
	}
	s.direct.conflicts.Add(1)
	return s.copyMove(ctx, rows)
}

// copyLine returns the line (1-based row of the batch) at which a COPY
// failed, from the context Postgres gives its error ("COPY posts, line 7,
// column raw: …"), or 0 when err names none (the staged INSERT, say).
func copyLine(err error) int {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return 0
	}
	// Where is a stack of contexts, innermost first, one a line.
	for _, ctx := range strings.Split(pgErr.Where, "\n") {
		if !strings.HasPrefix(ctx, "COPY ") {
			continue
		}
		_, after, ok := strings.Cut(ctx, ", line ")
		if !ok {
			return 0
		}
		end := 0
		for end < len(after) && after[end] >= '0' && after[end] <= '9' {
			end++
		}
		n, err := strconv.Atoi(after[:end])
		if err != nil {
			return 0
		}
		return n
	}
	return 0
}

// isConflict reports whether err is a unique_violation or an
// exclusion_violation: what ON CONFLICT DO NOTHING can skip.
func isConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "23505" || pgErr.Code == "23P01")
}

// copyMove runs one batch transaction: for each table, COPY into its
// staging table, then INSERT … ON CONFLICT DO NOTHING (or DO UPDATE) into
// the table. A connection left in a bad state is destroyed by the pool on
// release.
func (s *Sink[T]) copyMove(ctx context.Context, rows []msgRows) error {
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
	var created []string
	for i, t := range s.tables {
		var tableRows [][]any
		for _, r := range rows {
			if r[i] != nil {
				tableRows = append(tableRows, r[i])
			}
		}
		if len(tableRows) == 0 {
			continue
		}
		if staged[t.stage] == nil {
			if _, err := tx.Exec(ctx, t.createSt); err != nil {
				return fmt.Errorf("create staging table for %s: %w", t.name, err)
			}
			created = append(created, t.stage)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"pg_temp", t.stage}, t.columns, pgx.CopyFromRows(t.dedupe(tableRows))); err != nil {
			return fmt.Errorf("copy into staging table for %s: %w", t.name, err)
		}
		if _, err := tx.Exec(ctx, t.moveSt); err != nil {
			return fmt.Errorf("insert from staging table into %s: %w", t.name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	for _, st := range created {
		staged[st] = true
	}
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
