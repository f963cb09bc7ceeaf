package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
)

func TestMain(m *testing.M) { devstack.Main(m) }

func TestSlotCommands(t *testing.T) {
	stack := devstack.Shared(t)
	ctx := context.Background()
	url := stack.Database(t)
	name := devstack.Name(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, sql := range []string{devstack.EmployeesDDL, "CREATE PUBLICATION " + name + " FOR TABLE public.empleados",
		"SELECT pg_create_logical_replication_slot('" + name + "', 'pgoutput')"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"POSTGRES_URL": url, "PG_SLOT": name, "PG_PUBLICATION": name}[k]
		return v, ok
	})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := slotCommand(ctx, cfg, "status", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "slot "+name+": active=false wal_status=reserved") || !strings.Contains(out.String(), "tables=[public.empleados]") {
		t.Fatalf("status:\n%s", out.String())
	}
	out.Reset()
	if err := slotCommand(ctx, cfg, "drop", &out); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := slotCommand(ctx, cfg, "status", &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "absent") || !strings.Contains(out.String(), "tables=[]") {
		t.Fatalf("status after drop:\n%s", out.String())
	}
	if err := slotCommand(ctx, cfg, "explode", &out); err == nil || !strings.Contains(err.Error(), "want status or drop") {
		t.Fatalf("unknown verb: %v", err)
	}
}
