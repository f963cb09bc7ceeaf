package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
)

// Source captures the configured tables. Use New, then run it under
// cdc.Supervise.
type Source struct {
	cfg        Config
	checkpoint Checkpoints
	logger     *slog.Logger
	origin     cdc.Origin
	dec        *decoder
	acked      atomic.Uint64
	streaming  atomic.Bool
	chunks     *chunks
	backfill   *cdc.Backfiller
}

// Checkpoints keeps the source's checkpoint (stream.Checkpoints keeps it
// in a JetStream bucket).
type Checkpoints interface {
	Load(ctx context.Context, key string, v any) (bool, error)
	Save(ctx context.Context, key string, v any) error
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Streaming reports whether the source follows the replication stream
// and its snapshot (the first one, or one after a lost slot) is over.
func (s *Source) Streaming() bool { return s.streaming.Load() && !s.backfill.Snapshotting() }

// state is the checkpoint kept next to the slot: the slot alone cannot tell
// whether the snapshot that goes with it was completely published.
type state struct {
	Slot         string `json:"slot"`
	SnapshotLSN  string `json:"snapshot_lsn"`
	SnapshotDone bool   `json:"snapshot_done"`
}

// New returns a Source. checkpoints stores whether the initial snapshot was
// published; positions themselves live in the replication slot.
func New(cfg Config, checkpoints Checkpoints, opts ...Option) (*Source, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Source{cfg: cfg, checkpoint: checkpoints, logger: slog.New(slog.DiscardHandler),
		origin: cdc.NewOrigin(cdc.SourcePostgres, cfg.Slot), dec: newDecoder()}
	for _, opt := range opts {
		opt(s)
	}
	s.chunks = newChunks(s)
	s.backfill = cdc.NewBackfiller(s.origin, checkpoints, s.chunks, cdc.WithBackfillLogger(s.logger))
	return s, nil
}

// Name implements cdc.Source.
func (s *Source) Name() string { return cdc.SourcePostgres }

// KeepOnOversize returns the columns of each table its events keep when a
// row is too large to publish whole (Config.Keep), for
// stream.WithKeepOnOversize.
func (s *Source) KeepOnOversize() map[string][]string {
	keep := make(map[string][]string, len(s.cfg.Tables))
	for _, t := range s.cfg.Tables {
		keep[t] = s.cfg.Keep
	}
	return keep
}

func (s *Source) checkpointKey() string { return "postgres." + cdc.SubjectToken(s.cfg.Slot, false) }

// AckedLSN returns the last LSN reported (or about to be reported) as flushed.
func (s *Source) AckedLSN() pglogrepl.LSN { return pglogrepl.LSN(s.acked.Load()) }

// Run implements cdc.Source. It returns an error wrapping cdc.ErrPermanent
// when PostgreSQL refused what only a person can fix (a password, a grant, a
// missing database or table): restarting would only repeat the refusal.
func (s *Source) Run(ctx context.Context, pub cdc.Publisher) error {
	defer s.streaming.Store(false)
	return classify(s.run(ctx, pub))
}

func (s *Source) run(ctx context.Context, pub cdc.Publisher) error {
	conn, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var walLevel string
	if err := conn.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return fmt.Errorf("read wal_level: %w", err)
	}
	if walLevel != "logical" {
		return fmt.Errorf("PostgreSQL runs with wal_level=%s; logical replication needs wal_level=logical (ALTER SYSTEM SET wal_level = logical, then restart the server)", walLevel)
	}
	tables, err := s.describeTables(ctx, conn)
	if err != nil {
		return err
	}
	if err := s.ensurePublication(ctx, conn); err != nil {
		return err
	}

	var st state
	if _, err := s.checkpoint.Load(ctx, s.checkpointKey(), &st); err != nil {
		return err
	}
	slot, err := slotInfo(ctx, conn, s.cfg.Slot)
	if err != nil {
		return err
	}

	repl, err := s.replicationConn(ctx)
	if err != nil {
		return err
	}
	defer repl.Close(context.WithoutCancel(ctx))

	start, err := s.startPosition(ctx, repl, conn, tables, pub, slot, st)
	if err != nil {
		return err
	}
	// Backfills (the snapshots too) read their chunks beside the stream,
	// which carries their watermarks.
	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.backfill.Run(bctx)
	}()
	defer func() {
		stop()
		<-done
		s.chunks.close()
	}()
	return s.stream(ctx, repl, pub, start, tables)
}

// startPosition resumes from the slot when it and its snapshot are intact,
// and otherwise takes a new snapshot; it returns the LSN to stream from.
func (s *Source) startPosition(ctx context.Context, repl *pgconn.PgConn, conn *pgx.Conn, tables []table, pub cdc.Publisher, slot *slotState, st state) (pglogrepl.LSN, error) {
	reason := ""
	switch {
	case slot == nil && st.SnapshotDone:
		reason = "position_lost"
		s.logger.Warn("replication slot is gone although a snapshot was published from it; changes made while it was missing are unknown, taking a new snapshot",
			"slot", s.cfg.Slot, "snapshot_lsn", st.SnapshotLSN)
	case slot != nil && slot.lost:
		reason = "position_lost"
		s.logger.Warn("replication slot was invalidated (WAL removed); taking a new snapshot", "slot", s.cfg.Slot)
	case slot != nil && !st.SnapshotDone:
		reason = "incomplete"
		s.logger.Warn("replication slot exists but its snapshot was never completely published; taking it again", "slot", s.cfg.Slot)
	case slot == nil:
		reason = "initial"
	}
	if reason == "" {
		s.acked.Store(uint64(slot.confirmed))
		s.logger.Info("resuming replication", "slot", s.cfg.Slot, "lsn", slot.confirmed)
		return slot.confirmed, nil
	}
	if slot != nil {
		if err := pglogrepl.DropReplicationSlot(ctx, repl, s.cfg.Slot, pglogrepl.DropReplicationSlotOptions{Wait: true}); err != nil {
			return 0, fmt.Errorf("drop replication slot %s: %w", s.cfg.Slot, err)
		}
	}
	if err := s.checkpoint.Delete(ctx, s.checkpointKey()); err != nil {
		return 0, err
	}
	return s.snapshot(ctx, repl, tables, reason)
}

// connect opens the connection for queries and the snapshot.
func (s *Source) connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(s.cfg.ConnString)
	if err != nil {
		// Malformed settings stay malformed; pgconn leaves the password out.
		return nil, cdc.Permanent(fmt.Errorf("parse postgres connection string: %w", err))
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, connectFailure("connect", err)
	}
	return conn, nil
}

type slotState struct {
	confirmed pglogrepl.LSN
	lost      bool
}

func slotInfo(ctx context.Context, conn *pgx.Conn, name string) (*slotState, error) {
	var confirmed *string
	var walStatus *string
	err := conn.QueryRow(ctx,
		`SELECT confirmed_flush_lsn::text, wal_status FROM pg_replication_slots WHERE slot_name = $1`, name,
	).Scan(&confirmed, &walStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("inspect replication slot %s: %w", name, err)
	}
	st := &slotState{lost: walStatus != nil && *walStatus == "lost"}
	if confirmed != nil {
		lsn, err := pglogrepl.ParseLSN(*confirmed)
		if err != nil {
			return nil, fmt.Errorf("parse confirmed LSN of slot %s: %w", name, err)
		}
		st.confirmed = lsn
	}
	return st, nil
}

// table is a captured table as the snapshot sees it.
type table struct {
	name string   // schema.table
	keys []string // the columns that identify a row; none: all of them (REPLICA IDENTITY FULL without a key)
}

// describeTables checks every captured table exists and has a key the
// stream can identify rows by: without one, updates and deletes could not
// be attributed to a row and counts would drift. Both are permanent
// failures: only a change of the schema or the configuration helps.
func (s *Source) describeTables(ctx context.Context, conn *pgx.Conn) ([]table, error) {
	out := make([]table, 0, len(s.cfg.Tables))
	for _, name := range s.cfg.Tables {
		schema, rel, _ := strings.Cut(name, ".")
		var ident string
		err := conn.QueryRow(ctx, `SELECT c.relreplident::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
			WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r','p')`, schema, rel).Scan(&ident)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, cdc.Permanent(fmt.Errorf("captured table %s does not exist (or this role cannot see it)", name))
		}
		if err != nil {
			return nil, fmt.Errorf("inspect table %s: %w", name, err)
		}
		keys, err := tableKey(ctx, conn, pgx.Identifier{schema, rel}.Sanitize(), ident)
		if err != nil {
			return nil, fmt.Errorf("inspect key of %s: %w", name, err)
		}
		if ident == "n" || (ident == "d" && len(keys) == 0) {
			return nil, cdc.Permanent(fmt.Errorf("captured table %s has no primary key and REPLICA IDENTITY %s: its updates and deletes cannot be attributed to a row; add a primary key or set REPLICA IDENTITY FULL",
				name, map[string]string{"n": "NOTHING", "d": "DEFAULT"}[ident]))
		}
		out = append(out, table{name: name, keys: keys})
	}
	return out, nil
}

// tableKey returns the columns of the index the stream identifies rows by:
// the replica identity index with REPLICA IDENTITY USING INDEX, the primary
// key otherwise (with FULL too, so snapshot and stream keys agree; pgoutput
// then marks every column as part of the identity).
func tableKey(ctx context.Context, conn *pgx.Conn, ident, replident string) ([]string, error) {
	rows, err := conn.Query(ctx, `SELECT a.attname FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
		WHERE i.indrelid = $1::regclass AND CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END
		ORDER BY array_position(i.indkey, a.attnum)`, ident, replident)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s *Source) ensurePublication(ctx context.Context, conn *pgx.Conn) error {
	rows, err := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, s.cfg.Publication)
	if err != nil {
		return fmt.Errorf("inspect publication %s: %w", s.cfg.Publication, err)
	}
	published, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("inspect publication %s: %w", s.cfg.Publication, err)
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = $1)`, s.cfg.Publication).Scan(&exists); err != nil {
		return fmt.Errorf("inspect publication %s: %w", s.cfg.Publication, err)
	}
	var missing []string
	for _, t := range s.cfg.Tables {
		found := false
		for _, p := range published {
			if p == t {
				found = true
			}
		}
		if !found {
			schema, rel, _ := strings.Cut(t, ".")
			missing = append(missing, pgx.Identifier{schema, rel}.Sanitize())
		}
	}
	if len(missing) == 0 {
		return nil
	}
	pub := pgx.Identifier{s.cfg.Publication}.Sanitize()
	stmt := "CREATE PUBLICATION " + pub + " FOR TABLE " + strings.Join(missing, ", ")
	if exists {
		stmt = "ALTER PUBLICATION " + pub + " ADD TABLE " + strings.Join(missing, ", ")
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("%s (create it as the tables' owner, see docs/operations.md): %w", stmt, err)
	}
	s.logger.Info("publication updated", "publication", s.cfg.Publication, "tables", missing)
	return nil
}

func (s *Source) replicationConn(ctx context.Context) (*pgconn.PgConn, error) {
	cfg, err := pgconn.ParseConfig(s.cfg.ConnString)
	if err != nil {
		return nil, cdc.Permanent(fmt.Errorf("parse postgres connection string: %w", err))
	}
	cfg.RuntimeParams["replication"] = "database"
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		// A role without REPLICATION, or without a replication line in
		// pg_hba.conf, fails here and only here.
		return nil, connectFailure("open replication connection", err)
	}
	return conn, nil
}

// skipped counts and logs a row or change that identifies no row: it cannot
// be published (consumers could not apply it) and must not stop capture.
func (s *Source) skipped(table string, op cdc.Op, position, reason string) {
	metricSkipped.WithLabelValues(reason).Inc()
	s.logger.Warn("change skipped: it identifies no row", "table", table, "op", op, "position", position, "reason", reason)
}
