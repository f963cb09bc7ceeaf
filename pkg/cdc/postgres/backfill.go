package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
)

// watermarkPrefix is the prefix of the logical decoding messages that carry
// backfill watermarks (pg_logical_emit_message). Any role may emit them,
// they change no table, and pgoutput streams them (with messages 'true') at
// their transaction's commit, in commit order with the changes.
const watermarkPrefix = "reportes.watermark"

// chunks reads the chunks of the source's backfills (cdc.ChunkReader) on a
// connection of its own, with a decoder of its own: it runs beside the
// capture loop.
type chunks struct {
	s      *Source
	conn   *pgx.Conn
	dec    *decoder
	tables map[string]chunkTable
}

// chunkTable is a captured table as its chunks are read.
type chunkTable struct {
	table
	keyTypes []string // the type of each key column, to cast the key of the last row read
}

func newChunks(s *Source) *chunks {
	return &chunks{s: s, dec: newDecoder(), tables: map[string]chunkTable{}}
}

// connection returns the chunk connection, opening it (and describing the
// tables) when needed.
func (c *chunks) connection(ctx context.Context) (*pgx.Conn, error) {
	if c.conn != nil && !c.conn.IsClosed() {
		return c.conn, nil
	}
	conn, err := c.s.connect(ctx)
	if err != nil {
		return nil, err
	}
	tables, err := c.s.describeTables(ctx, conn)
	if err != nil {
		_ = conn.Close(ctx)
		return nil, err
	}
	for _, t := range tables {
		ct := chunkTable{table: t}
		schema, rel, _ := strings.Cut(t.name, ".")
		err := conn.QueryRow(ctx, `SELECT coalesce(array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY array_position($2::text[], a.attname::text)), '{}')
			FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attname::text = ANY($2::text[])`,
			pgx.Identifier{schema, rel}.Sanitize(), t.keys).Scan(&ct.keyTypes)
		if err != nil {
			_ = conn.Close(ctx)
			return nil, fmt.Errorf("inspect key types of %s: %w", t.name, err)
		}
		c.tables[t.name] = ct
	}
	c.conn = conn
	return conn, nil
}

func (c *chunks) close() {
	if c.conn != nil {
		_ = c.conn.Close(context.Background())
		c.conn = nil
	}
}

func (c *chunks) table(ctx context.Context, name string) (*pgx.Conn, chunkTable, error) {
	conn, err := c.connection(ctx)
	if err != nil {
		return nil, chunkTable{}, err
	}
	t, ok := c.tables[name]
	if !ok {
		return nil, chunkTable{}, cdc.Permanent(fmt.Errorf("table %s is not captured (captured: %s)", name, strings.Join(c.s.cfg.Tables, ", ")))
	}
	return conn, t, nil
}

// Estimate implements cdc.ChunkReader with the planner's row estimate.
func (c *chunks) Estimate(ctx context.Context, collection, _ string) (int64, error) {
	conn, t, err := c.table(ctx, collection)
	if err != nil {
		return 0, err
	}
	schema, rel, _ := strings.Cut(t.name, ".")
	ident := pgx.Identifier{schema, rel}.Sanitize()
	var n float64
	if err := conn.QueryRow(ctx, `SELECT reltuples FROM pg_class WHERE oid = $1::regclass`, ident).Scan(&n); err != nil {
		return 0, fmt.Errorf("estimate rows of %s: %w", t.name, err)
	}
	if n < 0 { // never analyzed: count, once
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+ident).Scan(&n); err != nil {
			return 0, fmt.Errorf("count rows of %s: %w", t.name, err)
		}
	}
	return int64(n), nil
}

// WriteWatermark implements cdc.ChunkReader: a transactional logical
// decoding message, streamed in commit order with the changes.
func (c *chunks) WriteWatermark(ctx context.Context, id string) error {
	conn, err := c.connection(ctx)
	if err != nil {
		return err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", watermarkPrefix, id); err != nil {
		return fmt.Errorf("emit watermark: %w", err)
	}
	return nil
}

// ReadChunk implements cdc.ChunkReader. The chunk is read in a repeatable
// read transaction whose snapshot holds no transaction that committed
// without being visible yet (pg_xact_status of the snapshot's in-progress
// transactions): such a transaction's changes may have been streamed before
// the window opened, and the chunk would put its older copy of their rows
// after them. Any other transaction the snapshot does not see commits after
// the window opened, so the loop observes its keys. A table without a key
// (REPLICA IDENTITY FULL) is read in one chunk.
func (c *chunks) ReadChunk(ctx context.Context, collection, filter string, after json.RawMessage, n int) ([]cdc.Row, json.RawMessage, bool, error) {
	conn, t, err := c.table(ctx, collection)
	if err != nil {
		return nil, nil, false, err
	}
	if len(t.keys) == 0 && len(after) > 0 {
		return nil, after, true, nil // read whole in its first chunk
	}
	query, args, err := chunkQuery(t, filter, after, n)
	if err != nil {
		return nil, nil, false, err
	}
	tx, err := c.cleanSnapshot(ctx, conn)
	if err != nil {
		return nil, nil, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
	rows, err := tx.Query(ctx, query, append([]any{pgx.QueryResultFormats{pgx.TextFormatCode}}, args...)...)
	if err != nil {
		return nil, nil, false, queryFailure(collection, err)
	}
	out, last, read, err := c.collect(rows, t)
	if err != nil {
		return nil, nil, false, queryFailure(collection, err)
	}
	return out, last, read < n || len(t.keys) == 0, nil
}

// collect decodes the rows of a chunk and returns them with the key of the
// last one (its key columns' text, a JSON array).
func (c *chunks) collect(rows pgx.Rows, t chunkTable) ([]cdc.Row, json.RawMessage, int, error) {
	defer rows.Close()
	fields := rows.FieldDescriptions()
	cols := snapshotColumns(fields, t.keys)
	keyAt := make([]int, len(t.keys)) // the column of each key part
	for i, k := range t.keys {
		for j, f := range fields {
			if f.Name == k {
				keyAt[i] = j
			}
		}
	}
	all := func(int) bool { return true }
	var out []cdc.Row
	last := make([]string, len(t.keys))
	read := 0
	for rows.Next() {
		read++
		values := rows.RawValues()
		after, key, ok := c.dec.row(cols, values, all)
		for i, j := range keyAt {
			last[i] = string(values[j])
		}
		if !ok {
			c.s.skipped(t.name, cdc.OpSnapshot, "backfill", "null_key")
			continue
		}
		out = append(out, cdc.Row{Key: key, After: after})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, 0, err
	}
	if read == 0 {
		return nil, nil, 0, nil
	}
	next, err := json.Marshal(last)
	return out, next, read, err
}

// cleanSnapshot begins a read-only repeatable read transaction whose
// snapshot hides no committed transaction, retrying a few times.
func (c *chunks) cleanSnapshot(ctx context.Context, conn *pgx.Conn) (pgx.Tx, error) {
	for attempt := 0; ; attempt++ {
		tx, err := conn.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
		if err != nil {
			return nil, fmt.Errorf("begin chunk transaction: %w", err)
		}
		var hidden int
		err = tx.QueryRow(ctx, `SELECT count(*) FROM pg_snapshot_xip(pg_current_snapshot()) x
			WHERE pg_xact_status(x) = 'committed'`).Scan(&hidden)
		if err == nil && hidden == 0 {
			return tx, nil
		}
		_ = tx.Rollback(ctx)
		if err != nil {
			return nil, fmt.Errorf("check chunk snapshot: %w", err)
		}
		if attempt == 100 {
			return nil, fmt.Errorf("no snapshot without committed but invisible transactions after %d attempts", attempt)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
}

// chunkQuery returns the query of the chunk of t after the key after.
func chunkQuery(t chunkTable, filter string, after json.RawMessage, n int) (string, []any, error) {
	schema, rel, _ := strings.Cut(t.name, ".")
	var where []string
	var args []any
	if filter != "" {
		where = append(where, "("+filter+")")
	}
	keys := make([]string, len(t.keys))
	for i, k := range t.keys {
		keys[i] = pgx.Identifier{k}.Sanitize()
	}
	if len(after) > 0 && len(keys) > 0 {
		var last []string
		if err := json.Unmarshal(after, &last); err != nil || len(last) != len(keys) {
			return "", nil, cdc.Permanent(fmt.Errorf("backfill position %s does not fit the key of %s", after, t.name))
		}
		params := make([]string, len(last))
		for i, v := range last {
			args = append(args, v)
			params[i] = "$" + strconv.Itoa(i+1) + "::" + t.keyTypes[i]
		}
		where = append(where, "("+strings.Join(keys, ", ")+") > ("+strings.Join(params, ", ")+")")
	}
	q := "SELECT * FROM " + pgx.Identifier{schema, rel}.Sanitize()
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	if len(keys) > 0 {
		q += " ORDER BY " + strings.Join(keys, ", ") + " LIMIT " + strconv.Itoa(n)
	}
	return q, args, nil
}

// queryFailure makes a query error the filter caused (a syntax error, an
// unknown column, a wrong type) permanent: reading again cannot help.
func queryFailure(table string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "42") || strings.HasPrefix(pgErr.Code, "22")) {
		return cdc.Permanent(fmt.Errorf("read chunk of %s: %w", table, err))
	}
	return fmt.Errorf("read chunk of %s: %w", table, err)
}
