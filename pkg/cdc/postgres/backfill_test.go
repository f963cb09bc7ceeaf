package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
)

// TestBackfillUnderWrites: a backfill in small chunks while rows are
// inserted, updated and deleted leaves the stream, folded the way the view
// folds it, equal to the table: no row lost, none brought back, none older
// than the table.
func TestBackfillUnderWrites(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados SELECT 'S-' || lpad(i::text, 5, '0'), 'n', 'vendedor', true FROM generate_series(1, 1500) i`)
	h.start()
	h.WaitBackfills(cdc.SourcePostgres, 60*time.Second)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		h.write(stop)
	}()
	bf := cdc.NewBackfill(cdc.SourcePostgres, "public.empleados", "", 50, cdc.ReasonRequested)
	if err := h.Checkpoints.Save(context.Background(), bf.Key(), bf); err != nil {
		t.Fatal(err)
	}
	got := h.WaitBackfill(bf, 120*time.Second)
	close(stop)
	wg.Wait()
	if got.State != cdc.BackfillDone || got.Rows == 0 {
		t.Fatalf("backfill: %+v", got)
	}
	t.Logf("backfill: %d rows published, %d superseded, %d chunks", got.Rows, got.Superseded, got.Chunks)
	h.exec(`INSERT INTO empleados VALUES ('~end', 'n', 'vendedor', true)`)
	h.compareWithTable("~end")
}

// TestBackfillResumesAfterRestart: a source stopped in the middle of a
// backfill resumes it after its last acknowledged chunk.
func TestBackfillResumesAfterRestart(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados SELECT 'S-' || lpad(i::text, 5, '0'), 'n', 'vendedor', true FROM generate_series(1, 600) i`)
	h.start()
	h.WaitBackfills(cdc.SourcePostgres, 60*time.Second)
	bf := cdc.NewBackfill(cdc.SourcePostgres, "public.empleados", "", 10, cdc.ReasonRequested)
	if err := h.Checkpoints.Save(context.Background(), bf.Key(), bf); err != nil {
		t.Fatal(err)
	}
	devstack.Eventually(t, 60*time.Second, func() (bool, string) {
		var cur cdc.Backfill
		_, _ = h.Checkpoints.Load(context.Background(), bf.Key(), &cur)
		return cur.Chunks >= 5, fmt.Sprintf("%d chunks", cur.Chunks)
	})
	_ = h.Stop()
	h.exec(`DELETE FROM empleados WHERE codigo IN ('S-00001', 'S-00599')`)
	h.start()
	got := h.WaitBackfill(bf, 120*time.Second)
	if got.State != cdc.BackfillDone || got.Rows > 600+10 || got.Rows < 590 {
		t.Fatalf("the backfill must resume after its last chunk, not start over: %+v", got)
	}
	h.exec(`INSERT INTO empleados VALUES ('~end', 'n', 'vendedor', true)`)
	h.compareWithTable("~end")
}

// TestBackfillFilterAndRefusal: a filtered backfill publishes the rows it
// selects and deletes nothing; one whose condition PostgreSQL refuses
// fails with the reason instead of retrying for ever.
func TestBackfillFilterAndRefusal(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true), ('S-02','Luis','vendedor',true), ('S-03','Eva','vendedor',false)`)
	h.start()
	h.WaitBackfills(cdc.SourcePostgres, 60*time.Second)
	before := len(h.Events())
	ctx := context.Background()
	good := cdc.NewBackfill(cdc.SourcePostgres, "public.empleados", "rol = 'vendedor'", 1, cdc.ReasonRequested)
	bad := cdc.NewBackfill(cdc.SourcePostgres, "public.empleados", "no_such_column = 1", 1, cdc.ReasonRequested)
	for _, b := range []cdc.Backfill{good, bad} {
		if err := h.Checkpoints.Save(ctx, b.Key(), b); err != nil {
			t.Fatal(err)
		}
	}
	byID := map[string]cdc.Backfill{good.ID: h.WaitBackfill(good, 60*time.Second), bad.ID: h.WaitBackfill(bad, 60*time.Second)}
	if b := byID[good.ID]; b.State != cdc.BackfillDone || b.Rows != 2 {
		t.Fatalf("filtered backfill: %+v", b)
	}
	if b := byID[bad.ID]; b.State != cdc.BackfillFailed || !strings.Contains(b.Error, "no_such_column") {
		t.Fatalf("refused backfill: %+v", b)
	}
	if got := cdctest.Summary(h.Events()[before:]); got != "snapshot:S-02 snapshot:S-03 " {
		t.Fatalf("filtered backfill events: %s", got)
	}
}

// write changes random rows until stop: updates, deletes, inserts.
func (h *harness) write(stop <-chan struct{}) {
	ctx := context.Background()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		default:
		}
		code := fmt.Sprintf("S-%05d", rand.IntN(1600)+1)
		var err error
		switch i % 4 {
		case 0, 1:
			_, err = h.conn.Exec(ctx, `UPDATE empleados SET rol = $2 WHERE codigo = $1`, code, fmt.Sprintf("r%d", i))
		case 2:
			_, err = h.conn.Exec(ctx, `DELETE FROM empleados WHERE codigo = $1`, code)
		case 3:
			_, err = h.conn.Exec(ctx, `INSERT INTO empleados VALUES ($1, 'n', $2, true) ON CONFLICT (codigo) DO UPDATE SET rol = $2`, code, fmt.Sprintf("i%d", i))
		}
		if err != nil {
			h.t.Error(err)
			return
		}
	}
}

// compareWithTable waits until the row sentinel was streamed, then compares
// the folded stream with the table, row by row.
func (h *harness) compareWithTable(sentinel string) {
	h.t.Helper()
	var evs []cdc.Event
	devstack.Eventually(h.t, 60*time.Second, func() (bool, string) {
		evs = h.Events()
		return len(evs) > 0 && evs[len(evs)-1].Key == sentinel, fmt.Sprintf("%d events", len(evs))
	})
	rows := cdctest.Fold(evs, "public.empleados")
	want := map[string]string{}
	res, err := h.conn.Query(context.Background(), `SELECT codigo, rol FROM empleados`)
	if err != nil {
		h.t.Fatal(err)
	}
	for res.Next() {
		var code, role string
		if err := res.Scan(&code, &role); err != nil {
			h.t.Fatal(err)
		}
		want[code] = role
	}
	if len(rows) != len(want) {
		h.t.Errorf("folded stream holds %d rows, the table %d", len(rows), len(want))
	}
	for code, role := range want {
		ev, ok := rows[code]
		var after struct {
			Rol string `json:"rol"`
		}
		if ok {
			_ = json.Unmarshal(ev.After, &after)
		}
		if !ok || after.Rol != role {
			h.t.Errorf("row %s: table rol=%q, stream %v rol=%q (%s at %s)", code, role, ok, after.Rol, ev.Op, ev.Position)
		}
	}
}
