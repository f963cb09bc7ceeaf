package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/cdctest"
	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/cdc/postgres"
)

// hostileKeys are valid primary keys that a careless path from a value to a
// key, an id or a subject would lose, merge or choke on.
var hostileKeys = []string{
	"", " ", "S-01", " S-01", "S-01 ", "a\nb", "a b", "a\r\nb", "a\tb", "a.b", "a..b", "*", ">", "a.*.>",
	"a:b", "a%0Ab", "ñandú ☃ 日本", "\x01\x02\x1f\x7f", "snapshot_begin", `[""]`, "\u2028",
	strings.Repeat("x", 10_000), strings.Repeat("x", 10_000) + "y",
}

// wantKey is the event key of a one-column key value (see the Key doc).
func wantKey(v string) string {
	if v == "" || v[0] == '[' {
		b, _ := json.Marshal([]string{v})
		return string(b)
	}
	return v
}

// checkRows fails t unless evs are the rows of keys, in order, each with
// its own id, a usable Nats-Msg-Id, and its code in the row.
func checkRows(t *testing.T, evs []cdc.Event, op cdc.Op, keys []string) {
	t.Helper()
	ids := map[string]bool{}
	for i, ev := range evs {
		if ev.Op != op || ev.Key != wantKey(keys[i]) {
			t.Fatalf("event %d: %s %.60q, want %s %.60q", i, ev.Op, ev.Key, op, wantKey(keys[i]))
		}
		if len(ev.ID) > 200 || strings.IndexFunc(ev.ID, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
			t.Fatalf("event %d: unusable id %q", i, ev.ID)
		}
		if ids[ev.ID] {
			t.Fatalf("event %d: id %q taken twice", i, ev.ID)
		}
		ids[ev.ID] = true
		if op == cdc.OpDelete {
			continue
		}
		var row struct{ Codigo *string }
		if err := json.Unmarshal(ev.After, &row); err != nil || row.Codigo == nil || *row.Codigo != keys[i] {
			t.Fatalf("event %d: row %.100s, want codigo %.60q (%v)", i, ev.After, keys[i], err)
		}
	}
}

// TestHostileKeys: the empty string, long, unicode, blank, dotted and
// wildcard keys are captured like any other, in the snapshot and the stream.
func TestHostileKeys(t *testing.T) {
	h := newHarness(t)
	insert := func(keys []string) {
		b := &pgx.Batch{}
		for _, k := range keys {
			b.Queue(`INSERT INTO empleados VALUES ($1, 'n', 'vendedor', true)`, k)
		}
		if err := h.conn.SendBatch(context.Background(), b).Close(); err != nil {
			t.Fatal(err)
		}
	}
	insert(hostileKeys)
	h.start()
	evs := h.WaitEvents(len(hostileKeys) + 2)
	snap := evs[1 : len(evs)-1]
	// The snapshot reads in no particular order: match rows by key.
	byKey := map[string]cdc.Event{}
	for _, ev := range snap {
		byKey[ev.Key] = ev
	}
	sorted := make([]cdc.Event, len(hostileKeys))
	for i, k := range hostileKeys {
		sorted[i] = byKey[wantKey(k)]
	}
	checkRows(t, sorted, cdc.OpSnapshot, hostileKeys)

	n := len(evs)
	h.exec(`UPDATE empleados SET rol = 'jefe'`)
	h.exec(`DELETE FROM empleados`)
	insert(hostileKeys)
	evs = h.WaitEvents(n + 3*len(hostileKeys))
	checkRows(t, evs[n+2*len(hostileKeys):], cdc.OpInsert, hostileKeys)

	// An update of the empty key, then one that moves it to another key.
	n = len(evs)
	h.exec(`UPDATE empleados SET rol = 'jefe' WHERE codigo = ''`)
	h.exec(`UPDATE empleados SET codigo = 'ex-vacio' WHERE codigo = ''`)
	h.exec(`UPDATE empleados SET codigo = '' WHERE codigo = 'ex-vacio'`)
	h.exec(`DELETE FROM empleados WHERE codigo = ''`)
	evs = h.WaitEvents(n + 6)
	if got, want := cdctest.Summary(evs[n:]), `update:[""] delete:[""] insert:ex-vacio delete:ex-vacio insert:[""] delete:[""] `; got != want {
		t.Fatalf("changes of the empty key: %s, want %s", got, want)
	}
}

// TestRowsWithoutKeyAreSkipped: under REPLICA IDENTITY FULL without a key a
// row whose only column is NULL identifies nothing; it is counted and left
// out, and capture goes on.
func TestRowsWithoutKeyAreSkipped(t *testing.T) {
	h := newHarness(t)
	h.exec(`CREATE TABLE solo (v text)`)
	h.exec(`ALTER TABLE solo REPLICA IDENTITY FULL`)
	h.exec(`INSERT INTO solo VALUES (NULL), ('a')`)
	h.cfg.Tables = []string{"public.solo"}
	h.start()
	h.WaitEvents(3)
	h.exec(`INSERT INTO solo VALUES (NULL)`)
	h.exec(`UPDATE solo SET v = 'b' WHERE v = 'a'`)
	// Without a key the whole row is the key: a changed value is another row.
	evs := h.WaitEvents(5)
	if got := cdctest.Summary(evs); got != "snapshot_begin: snapshot:a snapshot_end: delete:a insert:b " {
		t.Fatalf("events: %s", got)
	}
}

// TestFullIdentityKeepsTheKey: with REPLICA IDENTITY FULL pgoutput marks
// every column as the identity; events still carry the primary key, as the
// snapshot does, so an update stays an update of the same row.
func TestFullIdentityKeepsTheKey(t *testing.T) {
	h := newHarness(t)
	h.exec(`ALTER TABLE empleados REPLICA IDENTITY FULL`)
	h.exec(`INSERT INTO empleados VALUES ('S-01','Ana','operario',true)`)
	h.start()
	h.WaitEvents(3)
	h.exec(`UPDATE empleados SET rol = 'jefe' WHERE codigo = 'S-01'`)
	h.exec(`DELETE FROM empleados WHERE codigo = 'S-01'`)
	evs := h.WaitEvents(5)
	if got := cdctest.Summary(evs); got != "snapshot_begin: snapshot:S-01 snapshot_end: update:S-01 delete:S-01 " {
		t.Fatalf("events: %s", got)
	}
}

// TestToastedKey: a key stored out of line is not sent again in the new
// row of an update that leaves it alone; the update still names its row.
func TestToastedKey(t *testing.T) {
	h := newHarness(t)
	h.exec(`ALTER TABLE empleados ALTER COLUMN codigo SET STORAGE EXTERNAL`)
	key := strings.Repeat("0123456789abcdef", 150) // 2400 bytes: out of line, yet fits a btree entry
	h.exec(`INSERT INTO empleados VALUES ($1,'Ana','operario',true)`, key)
	h.start()
	h.WaitEvents(3)
	h.exec(`UPDATE empleados SET rol = 'jefe' WHERE codigo = $1`, key)
	evs := h.WaitEvents(4)
	if evs[3].Op != cdc.OpUpdate || evs[3].Key != key || !strings.Contains(string(evs[3].After), `"rol":"jefe"`) {
		t.Fatalf("update of a row with a TOASTed key: %s %.40q %.200s", evs[3].Op, evs[3].Key, evs[3].After)
	}
}

// TestStartupFailures: what only a person can fix (a password, a role that
// may not log in or replicate, a missing database or table) stops the
// source at once with an error wrapping cdc.ErrPermanent that names the
// problem; what can heal (nothing listening yet) is an ordinary error, for
// the supervisor to retry.
func TestStartupFailures(t *testing.T) {
	h := newHarness(t)
	name := h.cfg.Slot
	db := h.url[strings.LastIndex(h.url, "/")+1 : strings.Index(h.url, "?")]
	withUser := func(user string) string {
		return strings.Replace(h.url, "postgres://postgres@", "postgres://"+user+"@", 1)
	}
	role := func(r, attrs string) string {
		h.exec(`CREATE ROLE ` + r + ` ` + attrs)
		h.exec(`GRANT SELECT ON public.empleados TO ` + r)
		t.Cleanup(func() {
			_, _ = h.conn.Exec(context.Background(), `DROP OWNED BY `+r)
			_, _ = h.conn.Exec(context.Background(), `DROP ROLE `+r)
		})
		return r
	}
	// Created by its owner, so that the role without REPLICATION fails on
	// the replication connection rather than on creating it.
	h.exec(`CREATE PUBLICATION ` + h.cfg.Publication + ` FOR TABLE public.empleados`)
	pw := role("pw_"+name, `LOGIN REPLICATION PASSWORD 'right-s3cret'`)
	requirePassword(t, h, pw)
	// sslmode=prefer (the default): the server refuses TLS before it refuses the password.
	wrongPassword := strings.Replace(strings.Replace(h.url, "?sslmode=disable", "", 1), "postgres://postgres@", "postgres://"+pw+":wrong-s3cret@", 1)

	tests := []struct {
		name, conn string
		tables     []string
		want       []string
	}{
		{"wrong password", wrongPassword, nil, []string{`connect to PostgreSQL at 127.0.0.1:`, `as user "` + pw + `"`, "password authentication failed", "SQLSTATE 28P01"}},
		{"missing database", strings.Replace(h.url, "/"+db+"?", "/nada_"+name+"?", 1), nil, []string{"SQLSTATE 3D000", "nada_" + name}},
		{"role may not log in", withUser(role("nolog_"+name, "NOLOGIN")), nil, []string{"SQLSTATE 28000", "not permitted to log in"}},
		{"role may not replicate", withUser(role("norepl_"+name, "LOGIN")), nil, []string{"open replication connection", "SQLSTATE 42501"}},
		{"missing table", h.url, []string{"public.nada"}, []string{"captured table public.nada does not exist"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runToExit(t, h, tt.conn, tt.tables)
			t.Log(err)
			if !errors.Is(err, cdc.ErrPermanent) {
				t.Fatalf("want a permanent error, got %v", err)
			}
			for _, w := range append(tt.want, "permanent failure") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			if msg := strings.ToLower(err.Error()); strings.Contains(msg, "s3cret") || strings.Contains(msg, "tls") || strings.Contains(msg, "\n") {
				t.Errorf("error %q leaks the password, reports the TLS attempt or spans lines", err)
			}
		})
	}

	t.Run("nothing listening", func(t *testing.T) {
		port, err := devstack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		closed := strings.Replace(h.url, fmt.Sprintf(":%d/", devstack.Shared(t).Postgres.Port), fmt.Sprintf(":%d/", port), 1)
		err = runToExit(t, h, closed, nil)
		t.Log(err)
		if err == nil || errors.Is(err, cdc.ErrPermanent) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "transient") {
			t.Fatalf("want a transient connection error, got %v", err)
		}
	})
}

// runToExit runs a source with conn (and tables, when given) and returns
// what it stopped with, failing t unless it stops promptly by itself.
func runToExit(t *testing.T, h *harness, conn string, tables []string) error {
	t.Helper()
	cfg := h.cfg
	cfg.ConnString = conn
	if tables != nil {
		cfg.Tables = tables
	}
	src, err := postgres.New(cfg, h.Checkpoints)
	if err != nil {
		t.Fatal(err)
	}
	h.Start(src)
	err = h.Exited(15 * time.Second)
	if err != nil && err.Error() == "the source kept running" {
		_ = h.Stop()
		t.Fatal("the source did not stop by itself in 15s")
	}
	return err
}

// requirePassword makes the cluster, which trusts local connections, ask
// role for its password, and waits until it does.
func requirePassword(t *testing.T, h *harness, role string) {
	t.Helper()
	hba := filepath.Join(devstack.Shared(t).Postgres.Dir, "pg_hba.conf")
	orig, err := os.ReadFile(hba)
	if err != nil {
		t.Fatal(err)
	}
	rules := fmt.Sprintf("host all %[1]s 127.0.0.1/32 scram-sha-256\nhost replication %[1]s 127.0.0.1/32 scram-sha-256\n", role)
	if err := os.WriteFile(hba, append([]byte(rules), orig...), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = os.WriteFile(hba, orig, 0o600)
		_, _ = h.conn.Exec(context.Background(), `SELECT pg_reload_conf()`)
	})
	h.exec(`SELECT pg_reload_conf()`)
	url := strings.Replace(h.url, "postgres://postgres@", "postgres://"+role+":wrong@", 1)
	devstack.Eventually(t, 10*time.Second, func() (bool, string) {
		c, err := pgx.Connect(context.Background(), url)
		if err == nil {
			c.Close(context.Background())
			return false, "the wrong password is still accepted"
		}
		return strings.Contains(err.Error(), "28P01"), err.Error()
	})
}
