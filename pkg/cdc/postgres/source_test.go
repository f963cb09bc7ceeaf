package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/postgres"
)

func TestMain(m *testing.M) { devstack.Main(m) }

type harness struct {
	*cdctest.Stream
	t    *testing.T
	url  string
	conn *pgx.Conn
	cfg  postgres.Config
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	stream := cdctest.New(t)
	h := &harness{Stream: stream, t: t, url: devstack.Shared(t).Database(t)}
	ctx := context.Background()
	var err error
	if h.conn, err = pgx.Connect(ctx, h.url); err != nil {
		t.Fatal(err)
	}
	if _, err := h.conn.Exec(ctx, devstack.EmployeesDDL); err != nil {
		t.Fatal(err)
	}
	name := stream.Name
	h.cfg = postgres.Config{ConnString: h.url, Tables: []string{"public.empleados"}, Slot: name, Publication: name, StatusInterval: 50 * time.Millisecond}
	t.Cleanup(func() {
		_ = h.Stop()
		_, _ = h.conn.Exec(context.Background(), "SELECT pg_drop_replication_slot($1) FROM pg_replication_slots WHERE slot_name = $1", name)
		h.conn.Close(context.Background())
	})
	return h
}

func (h *harness) exec(sql string, args ...any) {
	h.t.Helper()
	if _, err := h.conn.Exec(context.Background(), sql, args...); err != nil {
		h.t.Fatalf("%s: %v", sql, err)
	}
}

func (h *harness) start() {
	h.t.Helper()
	src, err := postgres.New(h.cfg, h.Checkpoints)
	if err != nil {
		h.t.Fatal(err)
	}
	h.Start(src)
}

func TestSnapshotThenStream(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true), ('S-02','Luis',NULL,NULL)`)
	h.start()
	evs := h.WaitEvents(4)
	if got := cdctest.Summary(evs); got != "snapshot_begin: snapshot:S-01 snapshot:S-02 snapshot_end: " {
		t.Fatalf("snapshot events: %s", got)
	}
	if string(evs[2].After) != `{"codigo":"S-02","nombre":"Luis","rol":null,"activo":null}` {
		t.Fatalf("snapshot row: %s", evs[2].After)
	}

	h.exec(`INSERT INTO empleados VALUES ('S-03','Eva','vendedor',true)`)
	h.exec(`UPDATE empleados SET activo = false WHERE codigo = 'S-01'`)
	h.exec(`UPDATE empleados SET codigo = 'S-02B' WHERE codigo = 'S-02'`)
	h.exec(`DELETE FROM empleados WHERE codigo = 'S-03'`)
	evs = h.WaitEvents(9)
	if got := cdctest.Summary(evs[4:]); got != "insert:S-03 update:S-01 delete:S-02 insert:S-02B delete:S-03 " {
		t.Fatalf("stream events: %s", got)
	}
	for i := 5; i < len(evs); i++ {
		if evs[i].Version < evs[i-1].Version {
			t.Fatalf("versions go backwards: %d then %d", evs[i-1].Version, evs[i].Version)
		}
	}
	if evs[4].Version <= evs[0].Version || evs[4].CommitTime.IsZero() {
		t.Fatalf("streamed insert must be newer than the snapshot: %+v", evs[4])
	}
	if err := h.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("graceful stop returned %v", err)
	}

	// Restart: nothing already acknowledged comes again.
	h.exec(`INSERT INTO empleados VALUES ('S-04','Iris','operario',true)`)
	h.start()
	evs = h.WaitEvents(10)
	if evs[9].Op != cdc.OpInsert || evs[9].Key != "S-04" {
		t.Fatalf("after restart: %s", cdctest.Summary(evs[9:]))
	}
}

func TestTruncateIsAnEmptySnapshot(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true)`)
	h.start()
	h.WaitEvents(3)
	h.exec(`BEGIN; TRUNCATE empleados; INSERT INTO empleados VALUES ('S-09','Bea','operario',true); COMMIT`)
	evs := h.WaitEvents(6)
	if got := cdctest.Summary(evs[3:]); got != "snapshot_begin: snapshot_end: insert:S-09 " {
		t.Fatalf("truncate: %s", got)
	}
	if evs[3].Version <= evs[0].Version || evs[3].Snapshot != evs[4].Snapshot {
		t.Fatalf("truncate markers: %+v %+v", evs[3], evs[4])
	}
}

func TestLostSlotTakesNewSnapshot(t *testing.T) {
	h := newHarness(t)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true)`)
	h.start()
	h.WaitEvents(3)
	_ = h.Stop()
	// The server ends the walsender shortly after the client left.
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		_, err := h.conn.Exec(context.Background(), `SELECT pg_drop_replication_slot($1)`, h.cfg.Slot)
		return err == nil, fmt.Sprint(err)
	})
	h.exec(`DELETE FROM empleados WHERE codigo = 'S-01'`) // lost with the slot
	h.exec(`INSERT INTO empleados VALUES ('S-02','Luis','operario',true)`)
	h.start()
	evs := h.WaitEvents(6)
	if got := cdctest.Summary(evs[3:]); got != "snapshot_begin: snapshot:S-02 snapshot_end: " {
		t.Fatalf("after losing the slot: %s", got)
	}
	if evs[3].Snapshot == evs[0].Snapshot {
		t.Fatal("the new snapshot must have a new id")
	}
}

// TestIdleTableDoesNotRetainWAL: while the captured table is idle and other
// tables are written, the slot's confirmed position still advances.
func TestIdleTableDoesNotRetainWAL(t *testing.T) {
	h := newHarness(t)
	h.start()
	h.WaitEvents(2)
	h.exec(`CREATE TABLE otra (id serial primary key, v text)`)
	for range 20 {
		h.exec(`INSERT INTO otra (v) SELECT repeat('x', 1000) FROM generate_series(1, 100)`)
	}
	var target string
	if err := h.conn.QueryRow(context.Background(), `SELECT pg_current_wal_lsn()::text`).Scan(&target); err != nil {
		t.Fatal(err)
	}
	devstack.Eventually(t, 30*time.Second, func() (bool, string) {
		var ok bool
		var confirmed string
		err := h.conn.QueryRow(context.Background(),
			`SELECT confirmed_flush_lsn >= $2::pg_lsn, confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1`,
			h.cfg.Slot, target).Scan(&ok, &confirmed)
		return err == nil && ok, fmt.Sprintf("confirmed %s, want >= %s (err %v)", confirmed, target, err)
	})
}

func TestTableWithoutKeyIsRefused(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE sinclave (codigo text, rol text, activo boolean)`)
	h.cfg.Tables = []string{"public.sinclave"}
	h.start()
	if err := h.Exited(30 * time.Second); err == nil || !strings.Contains(err.Error(), "public.sinclave has no primary key") {
		t.Fatalf("error = %v", err)
	}
}

// TestLeastPrivilegeRole: a role with only REPLICATION and SELECT on the
// table captures it, once the table's owner created the publication.
func TestLeastPrivilegeRole(t *testing.T) {
	h := newHarness(t)
	role := "lp_" + h.cfg.Slot
	h.exec(`CREATE ROLE ` + role + ` WITH LOGIN REPLICATION`)
	h.exec(`GRANT SELECT ON public.empleados TO ` + role)
	h.exec(`CREATE PUBLICATION ` + h.cfg.Publication + ` FOR TABLE public.empleados`)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true)`)
	h.cfg.ConnString = strings.Replace(h.url, "postgres://postgres@", "postgres://"+role+"@", 1)
	h.start()
	h.WaitEvents(3)
	h.exec(`UPDATE empleados SET rol = 'jefe' WHERE codigo = 'S-01'`)
	evs := h.WaitEvents(4)
	if evs[3].Op != cdc.OpUpdate || !strings.Contains(string(evs[3].After), `"jefe"`) {
		t.Fatalf("least-privilege capture: %s %s", cdctest.Summary(evs), evs[3].After)
	}
}

// TestToastedValuesNeverLeak: an update that leaves a TOASTed column
// untouched publishes the row without that column, never as null.
func TestToastedValuesNeverLeak(t *testing.T) {
	h := newHarness(t)
	h.exec(`ALTER TABLE empleados ADD COLUMN bio text`)
	h.exec(`ALTER TABLE empleados ALTER COLUMN bio SET STORAGE EXTERNAL`)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true, (SELECT string_agg(md5(g::text), '') FROM generate_series(1, 400) g))`)
	h.start()
	evs := h.WaitEvents(3)
	if !strings.Contains(string(evs[1].After), `"bio":"`) {
		t.Fatalf("snapshot row lacks bio: %.200s", evs[1].After)
	}
	h.exec(`UPDATE empleados SET rol = 'jefe' WHERE codigo = 'S-01'`)
	evs = h.WaitEvents(4)
	after := string(evs[3].After)
	if strings.Contains(after, "bio") || !strings.Contains(after, `"rol":"jefe"`) {
		t.Fatalf("update must leave the unchanged TOASTed column out: %s", after)
	}
}
