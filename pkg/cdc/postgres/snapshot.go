package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
)

// snapshot creates the slot, reads every captured table in the slot's
// exported snapshot and publishes the rows. It returns the LSN to stream from.
func (s *Source) snapshot(ctx context.Context, repl *pgconn.PgConn, conn *pgx.Conn, tables []table, pub cdc.Publisher, reason string) (pglogrepl.LSN, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "EXPORT_SNAPSHOT"})
	if err != nil {
		return 0, fmt.Errorf("create replication slot %s: %w", s.cfg.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	s.logger.Info("snapshot started", "slot", s.cfg.Slot, "lsn", lsn, "reason", reason)
	tx, now, err := beginSnapshot(ctx, conn, res.SnapshotName)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	snap := cdc.NewSnapshot(pub, s.origin, cdc.Position{Text: lsn.String(), Version: uint64(lsn), Time: now}, reason)
	total := 0
	for _, t := range tables {
		n, err := s.snapshotTable(ctx, tx, t, snap, lsn.String())
		if err != nil {
			return 0, err
		}
		total += n
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("end snapshot transaction: %w", err)
	}
	if err := snap.Flush(ctx); err != nil {
		return 0, err
	}
	if err := s.checkpoint.Save(ctx, s.checkpointKey(), state{Slot: s.cfg.Slot, SnapshotLSN: lsn.String(), SnapshotDone: true}); err != nil {
		return 0, err
	}
	s.acked.Store(uint64(lsn))
	s.logger.Info("snapshot published", "slot", s.cfg.Slot, "lsn", lsn, "rows", total)
	return lsn, nil
}

// beginSnapshot opens the read-only transaction that reads the slot's
// exported snapshot, and returns it with the time it started.
func beginSnapshot(ctx context.Context, conn *pgx.Conn, snapshot string) (pgx.Tx, time.Time, error) {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("begin snapshot transaction: %w", err)
	}
	var now time.Time
	if _, err = tx.Exec(ctx, "SET TRANSACTION SNAPSHOT '"+snapshot+"'"); err != nil {
		err = fmt.Errorf("set transaction snapshot: %w", err)
	} else if err = tx.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		err = fmt.Errorf("read snapshot time: %w", err)
	}
	if err != nil {
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return nil, time.Time{}, err
	}
	return tx, now, nil
}

// snapshotTable publishes the rows of t, as of tx, in a bracket of snap.
func (s *Source) snapshotTable(ctx context.Context, tx pgx.Tx, t table, snap *cdc.Snapshot, position string) (int, error) {
	b, err := snap.Begin(ctx, t.name)
	if err != nil {
		return 0, err
	}
	schema, rel, _ := strings.Cut(t.name, ".")
	rows, err := tx.Query(ctx, "SELECT * FROM "+pgx.Identifier{schema, rel}.Sanitize(), pgx.QueryResultFormats{pgx.TextFormatCode})
	if err != nil {
		return 0, fmt.Errorf("snapshot %s: %w", t.name, err)
	}
	defer rows.Close()
	cols := snapshotColumns(rows.FieldDescriptions(), t.keys)
	all := func(int) bool { return true }
	for rows.Next() {
		after, key, ok := s.dec.row(cols, rows.RawValues(), all)
		if !ok {
			// Only a REPLICA IDENTITY FULL table without a key has rows
			// like this (a NULL as its only column): the stream could not
			// tell their changes apart either.
			s.skipped(t.name, cdc.OpSnapshot, position, "null_key")
			continue
		}
		if err := b.Row(ctx, key, after); err != nil {
			return b.Rows(), err
		}
	}
	if err := rows.Err(); err != nil {
		return b.Rows(), fmt.Errorf("snapshot %s: %w", t.name, err)
	}
	return b.Rows(), b.End(ctx)
}

// snapshotColumns describes the columns of a snapshot query. With no key
// columns (REPLICA IDENTITY FULL without a key) every column is part of the
// key, as pgoutput marks them in the stream.
func snapshotColumns(fields []pgconn.FieldDescription, keys []string) []column {
	cols := make([]column, len(fields))
	for i, f := range fields {
		cols[i] = column{name: f.Name, oid: f.DataTypeOID, key: len(keys) == 0 || slices.Contains(keys, f.Name)}
	}
	return cols
}
