package pgstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in order; each runs once per schema. %[1]s is the
// schema. Never edit one that was released: add the next.
var migrations = []string{
	// 1: the store.
	`CREATE TABLE %[1]s.meta (
		id boolean PRIMARY KEY DEFAULT true CHECK (id),
		partitions integer NOT NULL CHECK (partitions > 0)
	);
	CREATE TABLE %[1]s.positions (
		partition integer PRIMARY KEY,
		seq bigint NOT NULL DEFAULT 0,
		orders bigint NOT NULL DEFAULT 0,
		commit_time timestamptz,
		applied_at timestamptz
	);
	CREATE TABLE %[1]s.orders (
		key bytea PRIMARY KEY,
		partition integer NOT NULL,
		seller text,
		version bigint NOT NULL
	) WITH (fillfactor = 80);
	CREATE TABLE %[1]s.seller_orders (
		partition integer NOT NULL,
		seller text NOT NULL,
		orders bigint NOT NULL,
		PRIMARY KEY (seller, partition)
	);
	CREATE TABLE %[1]s.employees (
		key bytea PRIMARY KEY,
		code text NOT NULL,
		role text NOT NULL,
		active boolean NOT NULL,
		version bigint NOT NULL
	);
	CREATE VIEW %[1]s.dashboard AS
		SELECT e.code AS empleado, e.role AS rol,
			COALESCE((SELECT sum(c.orders) FROM %[1]s.seller_orders c WHERE c.seller = e.code), 0)::bigint AS pedidos_realizados,
			CASE WHEN e.active THEN 'Activo' ELSE 'Inactivo' END AS estado
		FROM %[1]s.employees e;
	CREATE VIEW %[1]s.totals AS
		SELECT (SELECT count(*) FROM %[1]s.employees) AS total_empleados,
			(SELECT COALESCE(sum(orders), 0) FROM %[1]s.positions)::bigint AS total_pedidos_procesados,
			((SELECT COALESCE(sum(orders), 0) FROM %[1]s.positions) -
			 (SELECT COALESCE(sum(c.orders), 0) FROM %[1]s.seller_orders c
			  WHERE c.seller IN (SELECT code FROM %[1]s.employees)))::bigint AS pedidos_sin_empleado;
	-- advance moves a partition's position from expected to seq, or fails
	-- with SQLSTATE RV001 when another writer moved it (fencing).
	CREATE FUNCTION %[1]s.advance(p integer, expected bigint, seq bigint, orders_delta bigint, commit timestamptz)
	RETURNS bigint LANGUAGE plpgsql AS $$
	DECLARE total bigint;
	BEGIN
		UPDATE %[1]s.positions AS ps
		SET seq = advance.seq, orders = ps.orders + orders_delta,
			commit_time = GREATEST(ps.commit_time, commit), applied_at = now()
		WHERE ps.partition = p AND ps.seq = expected
		RETURNING ps.orders INTO total;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'partition %% is no longer at position %%', p, expected USING ERRCODE = 'RV001';
		END IF;
		RETURN total;
	END $$;`,
}

// migrate applies the migrations schema lacks, under an advisory lock so
// that processes starting together apply each once, and records the
// partition count, or checks it against the one recorded.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string, partitions int) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('reportes view store ' || $1))`, schema); err != nil {
			return fmt.Errorf("lock the schema: %w", err)
		}
		ident := pgx.Identifier{schema}.Sanitize()
		_, err := tx.Exec(ctx, fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS %[1]s;
			CREATE TABLE IF NOT EXISTS %[1]s.schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`, ident))
		if err != nil {
			return fmt.Errorf("create schema %s: %w", schema, err)
		}
		var applied int
		if err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT COALESCE(max(version), 0) FROM %s.schema_migrations`, ident)).Scan(&applied); err != nil {
			return fmt.Errorf("read the schema version: %w", err)
		}
		if applied > len(migrations) {
			return fmt.Errorf("schema %s is at version %d, newer than this build knows (%d): run a newer release", schema, applied, len(migrations))
		}
		for v := applied + 1; v <= len(migrations); v++ {
			if _, err := tx.Exec(ctx, fmt.Sprintf(migrations[v-1], ident)); err != nil {
				return fmt.Errorf("migration %d: %w", v, err)
			}
			if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.schema_migrations (version) VALUES ($1)`, ident), v); err != nil {
				return fmt.Errorf("record migration %d: %w", v, err)
			}
		}
		return partitionCount(ctx, tx, ident, partitions)
	})
}

// partitionCount records the partition count of a new store, or checks
// that an existing store has the one asked for (0 accepts any).
func partitionCount(ctx context.Context, tx pgx.Tx, ident string, partitions int) error {
	var have int
	err := tx.QueryRow(ctx, fmt.Sprintf(`SELECT partitions FROM %s.meta`, ident)).Scan(&have)
	switch {
	case errors.Is(err, pgx.ErrNoRows) && partitions > 0:
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.meta (partitions) VALUES ($1)`, ident), partitions); err != nil {
			return fmt.Errorf("record %d partitions: %w", partitions, err)
		}
		if _, err := tx.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.positions (partition) SELECT generate_series(0, $1::integer - 1)`, ident), partitions); err != nil {
			return fmt.Errorf("create %d partitions: %w", partitions, err)
		}
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return nil // a reader before any projector created the store
	case err != nil:
		return fmt.Errorf("read the partition count: %w", err)
	case partitions > 0 && have != partitions:
		return fmt.Errorf("the view store has %d partitions, not %d: keep VIEW_PARTITIONS=%d, or rebuild into a new VIEW_SCHEMA", have, partitions, have)
	}
	return nil
}
