package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/config"
)

// slotCommand inspects or removes the replication slot and publication.
func slotCommand(ctx context.Context, cfg config.Config, verb string, out io.Writer) error {
	conn, err := pgx.Connect(ctx, cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("connect to postgres: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	switch verb {
	case "status":
		var active bool
		var walStatus, restart, confirmed, lag *string
		err := conn.QueryRow(ctx, `SELECT active, wal_status, restart_lsn::text, confirmed_flush_lsn::text,
			pg_size_pretty(pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn))
			FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot).Scan(&active, &walStatus, &restart, &confirmed, &lag)
		if errors.Is(err, pgx.ErrNoRows) {
			fmt.Fprintf(out, "slot %s: absent (the next start creates it and takes a snapshot)\n", cfg.Slot)
		} else if err != nil {
			return fmt.Errorf("inspect slot %s: %w", cfg.Slot, err)
		} else {
			fmt.Fprintf(out, "slot %s: active=%t wal_status=%s restart_lsn=%s confirmed_flush_lsn=%s retained_wal=%s\n",
				cfg.Slot, active, deref(walStatus), deref(restart), deref(confirmed), deref(lag))
		}
		rows, err := conn.Query(ctx, `SELECT schemaname || '.' || tablename FROM pg_publication_tables WHERE pubname = $1`, cfg.Publication)
		if err != nil {
			return fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
		}
		tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return fmt.Errorf("inspect publication %s: %w", cfg.Publication, err)
		}
		fmt.Fprintf(out, "publication %s: tables=%v\n", cfg.Publication, tables)
		return nil
	case "drop":
		if _, err := conn.Exec(ctx, `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, cfg.Slot); err != nil {
			return fmt.Errorf("drop slot %s (stop the ingestor first): %w", cfg.Slot, err)
		}
		if _, err := conn.Exec(ctx, "DROP PUBLICATION IF EXISTS "+pgx.Identifier{cfg.Publication}.Sanitize()); err != nil {
			return fmt.Errorf("drop publication %s: %w", cfg.Publication, err)
		}
		fmt.Fprintf(out, "dropped slot %s and publication %s; the next start takes a new snapshot\n", cfg.Slot, cfg.Publication)
		return nil
	}
	return fmt.Errorf("unknown slot command %q (want status or drop)", verb)
}

func deref(s *string) string {
	if s == nil {
		return "-"
	}
	return *s
}
