package projection

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/cdc"
)

func ord(op cdc.Op, key, seller string, version uint64) *cdc.Event {
	ev := &cdc.Event{ID: fmt.Sprintf("o-%s-%s-%d", op, key, version), Source: cdc.SourceMongo, Collection: "inventory_db.orders",
		Op: op, Key: key, Version: version, CommitTime: time.Unix(int64(version), 0)}
	if op != cdc.OpDelete && seller != "" {
		ev.After = json.RawMessage(fmt.Sprintf(`{"_id":%q,"vendedor":%s}`, key, seller))
	}
	return ev
}

func emp(op cdc.Op, code, role string, active bool, version uint64) *cdc.Event {
	ev := &cdc.Event{ID: fmt.Sprintf("e-%s-%s-%d", op, code, version), Source: cdc.SourcePostgres, Collection: "public.empleados",
		Op: op, Key: code, Version: version, CommitTime: time.Unix(int64(version), 0)}
	if op != cdc.OpDelete {
		ev.After = json.RawMessage(fmt.Sprintf(`{"codigo":%q,"nombre":"n","rol":%q,"activo":%t}`, code, role, active))
	}
	return ev
}

func marker(op cdc.Op, collection, id string, version uint64) *cdc.Event {
	return &cdc.Event{ID: "m-" + string(op) + id, Source: "x", Collection: collection, Op: op, Snapshot: id, Version: version}
}

type line struct {
	code   string
	orders int64
	estado string
}

func lines(d Dashboard) []line {
	out := []line{}
	for _, s := range d.DetallePorVendedor {
		out = append(out, line{s.Empleado, s.PedidosRealizados, s.Estado})
	}
	return out
}

func TestViewRules(t *testing.T) {
	tests := []struct {
		name       string
		events     []*cdc.Event
		wantLines  []line
		wantOrders int
		wantOrphan int64
		problems   int
	}{
		{
			name:       "seed example",
			events:     []*cdc.Event{emp(cdc.OpSnapshot, "S-01", "operario", true, 1), ord(cdc.OpSnapshot, "a", `"S-01"`, 1), ord(cdc.OpSnapshot, "b", `"S-01"`, 1)},
			wantLines:  []line{{"S-01", 2, "Activo"}},
			wantOrders: 2,
		},
		{
			name: "employee without orders is listed, order of unknown seller counts in totals",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", false, 2),
				ord(cdc.OpInsert, "a", `"S-01"`, 3), ord(cdc.OpInsert, "b", `"Z-9"`, 4)},
			wantLines:  []line{{"S-01", 1, "Activo"}, {"S-02", 0, "Inactivo"}},
			wantOrders: 2, wantOrphan: 1,
		},
		{
			name: "order moved to another seller",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", true, 1),
				ord(cdc.OpInsert, "a", `"S-01"`, 2), ord(cdc.OpUpdate, "a", `"S-02"`, 3)},
			wantLines:  []line{{"S-02", 1, "Activo"}, {"S-01", 0, "Activo"}},
			wantOrders: 1,
		},
		{
			name: "delete carries only the key",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), ord(cdc.OpInsert, "a", `"S-01"`, 2),
				ord(cdc.OpInsert, "b", `"S-01"`, 2), ord(cdc.OpDelete, "a", "", 3)},
			wantLines:  []line{{"S-01", 1, "Activo"}},
			wantOrders: 1,
		},
		{
			name: "redelivered and stale events change nothing",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", true, 1),
				ord(cdc.OpInsert, "a", `"S-01"`, 5), ord(cdc.OpUpdate, "a", `"S-02"`, 6),
				ord(cdc.OpInsert, "a", `"S-01"`, 5), ord(cdc.OpDelete, "zz", "", 7), ord(cdc.OpDelete, "zz", "", 7)},
			wantLines:  []line{{"S-02", 1, "Activo"}, {"S-01", 0, "Activo"}},
			wantOrders: 1,
		},
		{
			name: "employee deactivated, renamed and deleted",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", true, 1), emp(cdc.OpInsert, "S-03", "r", true, 1),
				ord(cdc.OpInsert, "a", `"S-01"`, 2), ord(cdc.OpInsert, "b", `"S-02"`, 2), ord(cdc.OpInsert, "c", `"S-03"`, 2),
				emp(cdc.OpUpdate, "S-01", "r", false, 3),
				emp(cdc.OpDelete, "S-02", "", false, 4), emp(cdc.OpInsert, "S-02X", "r", true, 4),
				emp(cdc.OpDelete, "S-03", "", false, 5)},
			wantLines:  []line{{"S-01", 1, "Inactivo"}, {"S-02X", 0, "Activo"}},
			wantOrders: 3, wantOrphan: 2,
		},
		{
			name: "orders without a usable seller are counted and reported",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1),
				ord(cdc.OpInsert, "a", `7`, 2), ord(cdc.OpInsert, "b", `null`, 2),
				{ID: "c", Source: "mongo", Collection: "inventory_db.orders", Op: cdc.OpInsert, Key: "c", Version: 2, After: json.RawMessage(`{"_id":"c"}`)}},
			wantLines:  []line{{"S-01", 0, "Activo"}},
			wantOrders: 3, wantOrphan: 3, problems: 3,
		},
		{
			name: "a seller fixed later is counted once",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1),
				ord(cdc.OpInsert, "a", `7`, 2), ord(cdc.OpUpdate, "a", `"S-01"`, 3)},
			wantLines:  []line{{"S-01", 1, "Activo"}},
			wantOrders: 1, problems: 1,
		},
		{
			name: "snapshot after a lost position drops what vanished meanwhile",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1),
				ord(cdc.OpInsert, "a", `"S-01"`, 2), ord(cdc.OpInsert, "b", `"S-01"`, 2), ord(cdc.OpInsert, "c", `"S-01"`, 2),
				marker(cdc.OpSnapshotBegin, "inventory_db.orders", "s2", 10),
				ord(cdc.OpSnapshot, "a", `"S-01"`, 10),
				ord(cdc.OpInsert, "d", `"S-01"`, 11), // streamed during the snapshot
				marker(cdc.OpSnapshotEnd, "inventory_db.orders", "s2", 10)},
			wantLines:  []line{{"S-01", 2, "Activo"}},
			wantOrders: 2,
		},
		{
			name: "employee snapshot drops employees deleted while the slot was lost",
			events: []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", true, 1),
				marker(cdc.OpSnapshotBegin, "public.empleados", "s", 9), emp(cdc.OpSnapshot, "S-02", "r", true, 9),
				marker(cdc.OpSnapshotEnd, "public.empleados", "s", 9)},
			wantLines: []line{{"S-02", 0, "Activo"}},
		},
		{
			name:      "events of other collections are ignored",
			events:    []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), {ID: "x", Source: "mongo", Collection: "other.coll", Op: cdc.OpInsert, Key: "k", After: json.RawMessage(`{}`)}},
			wantLines: []line{{"S-01", 0, "Activo"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := NewView(DefaultSchema())
			if err != nil {
				t.Fatal(err)
			}
			problems := 0
			for i, ev := range tt.events {
				if _, err := v.Apply(ev, uint64(i+1)); err != nil {
					if !errors.Is(err, ErrProblem) {
						t.Fatalf("event %d: unexpected error %v", i, err)
					}
					problems++
				}
			}
			d := v.Dashboard()
			if got := lines(d); !reflect.DeepEqual(got, tt.wantLines) {
				t.Errorf("detail = %v, want %v", got, tt.wantLines)
			}
			if d.MetricasGlobales.TotalPedidosProcesados != tt.wantOrders {
				t.Errorf("total orders = %d, want %d", d.MetricasGlobales.TotalPedidosProcesados, tt.wantOrders)
			}
			if d.MetricasGlobales.TotalEmpleados != len(tt.wantLines) {
				t.Errorf("total employees = %d, want %d", d.MetricasGlobales.TotalEmpleados, len(tt.wantLines))
			}
			if d.MetricasGlobales.PedidosSinEmpleado != tt.wantOrphan {
				t.Errorf("orders without employee = %d, want %d", d.MetricasGlobales.PedidosSinEmpleado, tt.wantOrphan)
			}
			if problems != tt.problems {
				t.Errorf("problems = %d, want %d", problems, tt.problems)
			}

			// Replaying the whole stream (same sequences) changes nothing,
			// and neither does a rebuild into a fresh view.
			before := v.JSON()
			for i, ev := range tt.events {
				_, _ = v.Apply(ev, uint64(i+1))
			}
			if after := v.JSON(); string(after) != string(before) {
				t.Errorf("replay changed the view:\n%s\n%s", before, after)
			}
		})
	}
}

func TestSellerPath(t *testing.T) {
	tests := []struct {
		doc, path, want string
		problem         bool
	}{
		{`{"vendedor":"S-1"}`, "vendedor", "S-1", false},
		{`{"venta":{"vendedor":{"codigo":"S-2"}}}`, "venta.vendedor.codigo", "S-2", false},
		{`{"venta":"x"}`, "venta.vendedor", "", true},
		{`{"vendedor":{"$oid":"abc"}}`, "vendedor", "", true},
		{`[1,2]`, "vendedor", "", true},
		{`{}`, "vendedor", "", true},
		{`{"vendedor":"S-\u00e9","vendedor":"S-3"}`, "vendedor", "S-3", false},
		{`{"vendedor":"S-\u00e9"}`, "vendedor", "S-é", false},
		{`{"vendedor":"S-1"`, "vendedor", "", true},
		{`"S-1"`, "vendedor", "", true},
	}
	for _, tt := range tests {
		s := DefaultSchema()
		s.SellerField = tt.path
		code, problem := sellerOf(json.RawMessage(tt.doc), s.sellerPath())
		if got := string(code); got != tt.want || (problem != "") != tt.problem {
			t.Errorf("sellerOf(%s, %s) = %q, %q; want %q, problem %t", tt.doc, tt.path, got, problem, tt.want, tt.problem)
		}
	}
}

func TestJSONShape(t *testing.T) {
	v, _ := NewView(DefaultSchema())
	for i, ev := range []*cdc.Event{emp(cdc.OpSnapshot, "S-01", "operario", true, 1), ord(cdc.OpSnapshot, "a", `"S-01"`, 1), ord(cdc.OpSnapshot, "b", `"S-01"`, 1)} {
		if _, err := v.Apply(ev, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	var got map[string]any
	if err := json.Unmarshal(v.JSON(), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"titulo":               "Dashboard Operativo - Sprint 4",
		"metricas_globales":    map[string]any{"total_empleados": 1.0, "total_pedidos_procesados": 2.0, "pedidos_sin_empleado": 0.0},
		"detalle_por_vendedor": []any{map[string]any{"empleado": "S-01", "rol": "operario", "pedidos_realizados": 2.0, "estado": "Activo"}},
	}
	fresh := got["frescura"].(map[string]any)
	delete(got, "frescura")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dashboard = %v\nwant %v", got, want)
	}
	if fresh["secuencia"] != 3.0 || fresh["ultimo_cambio"] == nil {
		t.Errorf("frescura = %v", fresh)
	}
}

// FuzzApply feeds arbitrary events to the view: it must never panic and its
// totals must stay consistent with its detail.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"id":"1","source":"mongo","collection":"inventory_db.orders","op":"insert","key":"a","version":1,"after":{"vendedor":"S-01"}}`))
	f.Add([]byte(`{"id":"2","source":"postgres","collection":"public.empleados","op":"update","key":"S-01","after":{"codigo":5,"activo":"x"}}`))
	f.Add([]byte(`{"id":"3","source":"mongo","collection":"inventory_db.orders","op":"snapshot_end","snapshot":"s"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, _ := NewView(DefaultSchema())
		seed := []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), ord(cdc.OpInsert, "a", `"S-01"`, 1)}
		for i, ev := range seed {
			_, _ = v.Apply(ev, uint64(i+1))
		}
		var ev cdc.Event
		if cdc.Decode(data, &ev) == nil {
			_, _ = v.Apply(&ev, 10)
		}
		d := v.Dashboard()
		var listed int64
		for _, s := range d.DetallePorVendedor {
			if s.PedidosRealizados < 0 {
				t.Fatalf("negative count: %+v", s)
			}
			listed += s.PedidosRealizados
		}
		if d.MetricasGlobales.PedidosSinEmpleado < 0 || int64(d.MetricasGlobales.TotalPedidosProcesados) < d.MetricasGlobales.PedidosSinEmpleado {
			t.Fatalf("inconsistent totals: %+v", d.MetricasGlobales)
		}
	})
}

func TestOrderKeys(t *testing.T) {
	v, _ := NewView(DefaultSchema())
	keys := []string{"6b0a0d043c5e6b4ddcd50494", "ff0a0d043c5e6b4ddcd50490", "6B0A0D043C5E6B4DDCD50494", "a", `{"$numberInt":"1"}`,
		"6b0a0d043c5e6b4ddcd5049z", "6b0a0d043c5e6b4ddcd5049/", "6b0a0d043c5e6b4ddcd5049:", "6b0a0d043c5e6b4ddcd5049`", "6b0a0d043c5e6b4ddcd5049g"}
	const objectIDs = 2 // the first two: kept as 12 bytes, the rest as given
	for i, k := range keys {
		if _, err := v.Apply(ord(cdc.OpInsert, k, `"S-01"`, uint64(i+1)), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Dashboard().MetricasGlobales.TotalPedidosProcesados; n != len(keys) {
		t.Fatalf("orders = %d, want %d (keys must stay distinct)", n, len(keys))
	}
	if len(v.orders.oids) != objectIDs {
		t.Errorf("%d keys kept as ObjectIDs, want %d", len(v.orders.oids), objectIDs)
	}
	seen := map[string]bool{}
	v.orders.each(func(k string, _ order) { seen[k] = true })
	for _, k := range keys {
		if !seen[k] {
			t.Errorf("key %q lost its form", k)
		}
	}
	for i, k := range keys {
		if _, err := v.Apply(ord(cdc.OpDelete, k, "", uint64(100+i)), uint64(100+i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := v.Dashboard().MetricasGlobales.TotalPedidosProcesados; n != 0 {
		t.Fatalf("orders after deleting all = %d", n)
	}
}

// TestUpdateOfSnapshotEnd: an employee a snapshot drops is in the update
// of the batch that ends the snapshot, as no longer an employee, so that
// its metric subject and the stream clients hear of it.
func TestUpdateOfSnapshotEnd(t *testing.T) {
	v, _ := NewView(DefaultSchema())
	evs := []*cdc.Event{emp(cdc.OpInsert, "S-01", "r", true, 1), emp(cdc.OpInsert, "S-02", "r", true, 1),
		marker(cdc.OpSnapshotBegin, "public.empleados", "s", 9), emp(cdc.OpSnapshot, "S-02", "r", true, 9)}
	for i, ev := range evs {
		_, _ = v.Apply(ev, uint64(i+1))
	}
	entries := []Entry{{Seq: 5, Event: *marker(cdc.OpSnapshotEnd, "public.empleados", "s", 9)}}
	v.ApplyBatch(entries)
	u := v.updateOf(entries, 4)
	if len(u.Sellers) != 1 || u.Sellers[0].Empleado != "S-01" || u.Sellers[0].EsEmpleado || u.Sellers[0].Seq != 5 {
		t.Errorf("sellers %+v, want S-01 as no longer an employee at seq 5", u.Sellers)
	}
	if u.Totals == nil || u.Totals.TotalEmpleados != 1 || u.From != 4 || u.Seq != 5 {
		t.Errorf("update %+v, totals %+v: want (4, 5] with one employee", u, u.Totals)
	}
}
