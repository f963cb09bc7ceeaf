// Package pgview keeps a PostgreSQL copy of the dashboard view, for SQL
// consumers (BI tools, reports) that cannot call the API.
//
// # Contract
//
// The table holds one row per employee with the dashboard's detail columns
// (in the dashboard's order when read ORDER BY pedidos_realizados DESC,
// empleado);
// a second table (<table>_estado) holds the totals and the stream sequence
// the copy reflects. Each write replaces the whole copy in one transaction,
// so a reader always sees a consistent dashboard at one stream sequence. A
// write is skipped when the stored sequence is already newer, so several API
// replicas may keep the same table without ever moving it backwards. Writes
// are coalesced: at most one per interval, always of the latest view.
package pgview

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reportes/reportes/pkg/projection"
)

// Source is what the writer copies: the view's dashboard.
type Source interface {
	Dashboard() projection.Dashboard
}

// Writer copies a view into PostgreSQL.
type Writer struct {
	pool     *pgxpool.Pool
	table    pgx.Identifier
	state    pgx.Identifier
	view     Source
	interval time.Duration
	logger   *slog.Logger
	kick     chan struct{}
}

// Option configures a Writer.
type Option func(*Writer)

// WithInterval sets the minimum time between writes (default 100ms).
func WithInterval(d time.Duration) Option { return func(w *Writer) { w.interval = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(w *Writer) {
		if l != nil {
			w.logger = l
		}
	}
}

// New returns a Writer of view into table ("schema.name") of the database at
// connString, creating the tables when missing.
func New(ctx context.Context, connString, table string, view Source, opts ...Option) (*Writer, error) {
	schema, name, ok := strings.Cut(table, ".")
	if !ok || schema == "" || name == "" {
		return nil, fmt.Errorf("view table %q must be schema-qualified, like public.reportes_dashboard", table)
	}
	pool, err := pgxpool.New(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("connect to the view database: %w", err)
	}
	w := &Writer{
		pool: pool, table: pgx.Identifier{schema, name}, state: pgx.Identifier{schema, name + "_estado"},
		view: view, interval: 100 * time.Millisecond, logger: slog.New(slog.DiscardHandler), kick: make(chan struct{}, 1),
	}
	for _, o := range opts {
		o(w)
	}
	ddl := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s (
			empleado text NOT NULL,
			rol text NOT NULL,
			pedidos_realizados bigint NOT NULL,
			estado text NOT NULL);
		CREATE TABLE IF NOT EXISTS %s (
			id int PRIMARY KEY CHECK (id = 1),
			secuencia bigint NOT NULL,
			total_empleados bigint NOT NULL,
			total_pedidos_procesados bigint NOT NULL,
			pedidos_sin_empleado bigint NOT NULL,
			ultimo_cambio timestamptz,
			escrito timestamptz NOT NULL)`, w.table.Sanitize(), w.state.Sanitize())
	if _, err := pool.Exec(ctx, ddl); err != nil {
		pool.Close()
		return nil, fmt.Errorf("create view tables: %w", err)
	}
	return w, nil
}

// Changed tells the writer the view changed; it never blocks.
func (w *Writer) Changed() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// Run writes the view after changes until ctx ends, then closes the pool.
func (w *Writer) Run(ctx context.Context) error {
	defer w.pool.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-w.kick:
		}
		if err := w.Write(ctx); err != nil && ctx.Err() == nil {
			// The next change retries; the view itself is unaffected.
			w.logger.Error("write the view table", "table", w.table.Sanitize(), "err", err)
			w.Changed()
		}
		t := time.NewTimer(w.interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Write copies the current view now.
func (w *Writer) Write(ctx context.Context) error {
	d := w.view.Dashboard()
	return pgx.BeginFunc(ctx, w.pool, func(tx pgx.Tx) error {
		// Lock the state row (creating it) so concurrent writers serialize,
		// and skip the write if a newer sequence is already stored.
		var stored int64
		err := tx.QueryRow(ctx, fmt.Sprintf(`INSERT INTO %s AS s (id, secuencia, total_empleados, total_pedidos_procesados, pedidos_sin_empleado, escrito)
			VALUES (1, -1, 0, 0, 0, now()) ON CONFLICT (id) DO UPDATE SET id = 1 RETURNING s.secuencia`, w.state.Sanitize())).Scan(&stored)
		if err != nil {
			return fmt.Errorf("lock view state: %w", err)
		}
		seq := int64(d.Frescura.Secuencia) //nolint:gosec // stream sequences fit in int64
		if stored > seq {
			return nil
		}
		if _, err := tx.Exec(ctx, "DELETE FROM "+w.table.Sanitize()); err != nil {
			return fmt.Errorf("clear view table: %w", err)
		}
		rows := make([][]any, len(d.DetallePorVendedor))
		for i, s := range d.DetallePorVendedor {
			rows[i] = []any{s.Empleado, s.Rol, s.PedidosRealizados, s.Estado}
		}
		if _, err := tx.CopyFrom(ctx, w.table, []string{"empleado", "rol", "pedidos_realizados", "estado"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("fill view table: %w", err)
		}
		_, err = tx.Exec(ctx, fmt.Sprintf(`UPDATE %s SET secuencia = $1, total_empleados = $2, total_pedidos_procesados = $3,
			pedidos_sin_empleado = $4, ultimo_cambio = $5, escrito = now() WHERE id = 1`, w.state.Sanitize()),
			seq, d.MetricasGlobales.TotalEmpleados, d.MetricasGlobales.TotalPedidosProcesados, d.MetricasGlobales.PedidosSinEmpleado, d.Frescura.UltimoCambio)
		if err != nil {
			return fmt.Errorf("update view state: %w", err)
		}
		return nil
	})
}
