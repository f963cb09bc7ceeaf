package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.mongodb.org/mongo-driver/bson"
)

// TestPostgresHostileKeys: employees whose codes are the empty string, 10
// KB long, unicode, or full of what subjects, headers and message ids
// reserve (newlines, blanks, dots, "*", ">", control characters) flow from
// the snapshot and the stream to the dashboard like any other: it equals the
// recount, the ingestor never restarts, and each employee keeps its orders.
func TestPostgresHostileKeys(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	codes := []string{
		"", " ", "S-01", " S-01", "S-01 ", "a\nb", "a b", "a\r\nb", "a\tb", "a.b", "a..b", "*", ">", "a.*.>",
		"a:b", "a%0Ab", "ñandú ☃ 日本", "\x01\x02\x1f\x7f", "snapshot_begin", `[""]`, "\u2028",
		strings.Repeat("x", 10_000), strings.Repeat("x", 10_000) + "y",
	}
	hire := func(codes []string) {
		t.Helper()
		b := &pgx.Batch{}
		for _, c := range codes {
			b.Queue(`INSERT INTO empleados VALUES ($1, 'n', 'vendedor', true)`, c)
		}
		if err := e.pg.SendBatch(ctx, b).Close(); err != nil {
			t.Fatal(err)
		}
		for i, c := range codes {
			for range i%3 + 1 {
				if _, err := e.orders.InsertOne(ctx, bson.D{{Key: "vendedor", Value: c}}); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := e.pg.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	half := len(codes) / 2
	hire(codes[:half]) // read by the snapshot
	e.start("ingestor")
	e.start("api")
	e.converges(60 * time.Second)

	hire(codes[half:]) // read from the stream
	d := e.converges(60 * time.Second)
	if d.MetricasGlobales.TotalEmpleados != len(codes) || len(d.DetallePorVendedor) != len(codes) {
		t.Fatalf("employees %+v, want %d, all in the detail", d.MetricasGlobales, len(codes))
	}

	for _, c := range codes {
		exec(`UPDATE empleados SET activo = false WHERE codigo = $1`, c)
	}
	exec(`UPDATE empleados SET codigo = 'ex-vacio' WHERE codigo = ''`)
	exec(`UPDATE empleados SET codigo = '' WHERE codigo = 'a.b'`)
	exec(`DELETE FROM empleados WHERE codigo = $1 OR codigo = '*'`, codes[len(codes)-1])
	e.converges(60 * time.Second)

	if n := e.metric("ingestor", "reportes_cdc_source_restarts_total"); n != 0 {
		t.Errorf("the ingestor restarted a source %v times", n)
	}
	if n := e.metric("ingestor", "reportes_postgres_skipped_changes_total"); n != 0 {
		t.Errorf("%v changes skipped", n)
	}
}
