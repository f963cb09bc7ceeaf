package postgres

import (
	"context"
	"fmt"
	"slices"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
)

// snapshot creates the slot and requests a full backfill of every
// captured table, which runs beside the stream (cdc.Backfiller): a first
// snapshot, or one after a lost position, is read the way any backfill is.
// It returns the LSN to stream from, the slot's consistent point.
func (s *Source) snapshot(ctx context.Context, repl *pgconn.PgConn, tables []table, reason string) (pglogrepl.LSN, error) {
	res, err := pglogrepl.CreateReplicationSlot(ctx, repl, s.cfg.Slot, "pgoutput",
		pglogrepl.CreateReplicationSlotOptions{Mode: pglogrepl.LogicalReplication, SnapshotAction: "NOEXPORT_SNAPSHOT"})
	if err != nil {
		return 0, fmt.Errorf("create replication slot %s: %w", s.cfg.Slot, err)
	}
	lsn, err := pglogrepl.ParseLSN(res.ConsistentPoint)
	if err != nil {
		return 0, fmt.Errorf("parse consistent point %q: %w", res.ConsistentPoint, err)
	}
	for _, t := range tables {
		bf := cdc.NewBackfill(cdc.SourcePostgres, t.name, "", s.cfg.ChunkSize, reason)
		if err := s.backfill.Request(ctx, bf); err != nil {
			return 0, err
		}
		s.logger.Info("snapshot requested", "slot", s.cfg.Slot, "table", t.name, "lsn", lsn, "reason", reason, "backfill", bf.ID)
	}
	if err := s.checkpoint.Save(ctx, s.checkpointKey(), state{Slot: s.cfg.Slot, SnapshotLSN: lsn.String(), SnapshotDone: true}); err != nil {
		return 0, err
	}
	s.acked.Store(uint64(lsn))
	return lsn, nil
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
