package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/reportes/reportes/pkg/projection"
)

func detailAPI(t *testing.T) (http.Handler, *healthy) {
	t.Helper()
	d := &healthy{body: sampleView(t).JSON(), health: Health{Ready: true}}
	return New(d, WithLogger(slog.New(slog.DiscardHandler))), d
}

// TestDashboardETag: the dashboard's ETag is the view's sequence, and a
// request naming it is answered 304 without a body; a stale view has
// another tag.
func TestDashboardETag(t *testing.T) {
	api, d := detailAPI(t)
	rec := get(api, http.MethodGet, "/reportes/dashboard")
	tag := rec.Header().Get("ETag")
	if rec.Code != http.StatusOK || tag != `W/"3"` {
		t.Fatalf("status %d, ETag %q, want 200 with W/\"3\"", rec.Code, tag)
	}
	for _, inm := range []string{tag, `"3"`, `"1", W/"3"`, "*"} {
		if rec := get(api, http.MethodGet, "/reportes/dashboard", "If-None-Match", inm); rec.Code != http.StatusNotModified || rec.Body.Len() != 0 {
			t.Errorf("If-None-Match %s: status %d, %d bytes, want 304 and none", inm, rec.Code, rec.Body.Len())
		}
	}
	if rec := get(api, http.MethodGet, "/reportes/dashboard", "If-None-Match", `W/"2"`); rec.Code != http.StatusOK {
		t.Errorf("an old tag: status %d, want 200", rec.Code)
	}
	d.set(Health{Ready: true, Err: errNATS})
	rec = get(api, http.MethodGet, "/reportes/dashboard", "If-None-Match", tag)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("ETag"), `W/"3-stale-`) {
		t.Errorf("stale: status %d, ETag %q, want 200 with a stale tag", rec.Code, rec.Header().Get("ETag"))
	}
}

// TestDashboardFilters: rol, estado and limit filter the detail and leave
// the totals; anything else is a 400 naming the parameter.
func TestDashboardFilters(t *testing.T) {
	api, _ := detailAPI(t)
	for query, want := range map[string][]string{
		"?estado=Activo":   {"S-01"},
		"?estado=Inactivo": {"S-02"},
		"?rol=operario":    {"S-01"},
		"?rol=":            {"S-02"},
		"?limit=1":         {"S-01"},
		"?limit=5":         {"S-01", "S-02"},
	} {
		rec := get(api, http.MethodGet, "/reportes/dashboard"+query)
		var d projection.Dashboard
		if err := json.Unmarshal(rec.Body.Bytes(), &d); err != nil || rec.Code != http.StatusOK {
			t.Fatalf("%s: status %d, %v", query, rec.Code, err)
		}
		var got []string
		for _, s := range d.DetallePorVendedor {
			got = append(got, s.Empleado)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") || d.MetricasGlobales.TotalEmpleados != 2 || d.MetricasGlobales.TotalPedidosProcesados != 1 {
			t.Errorf("%s: detail %v, totals %+v; want %v and the totals unchanged", query, got, d.MetricasGlobales, want)
		}
	}
	for query, names := range map[string]string{
		"?limit=-1": "limit", "?limit=x": "limit", "?estado=x": "estado", "?order=desc": "order", "?rol=a&rol=b": "rol",
	} {
		rec := get(api, http.MethodGet, "/reportes/dashboard"+query)
		var e map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != http.StatusBadRequest || !strings.Contains(e["error"], names) {
			t.Errorf("%s: status %d, %q; want 400 naming %s", query, rec.Code, e["error"], names)
		}
	}
}

// TestSellerRoute: one seller's line, 404 with the JSON error for a code
// no employee has, 503 before the view is ready.
func TestSellerRoute(t *testing.T) {
	api, d := detailAPI(t)
	rec := get(api, http.MethodGet, "/reportes/vendedores/S-01")
	var s projection.Seller
	if err := json.Unmarshal(rec.Body.Bytes(), &s); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("status %d, %v", rec.Code, err)
	}
	if s != (projection.Seller{Empleado: "S-01", Rol: "operario", PedidosRealizados: 1, Estado: "Activo"}) {
		t.Errorf("line %+v", s)
	}
	rec = get(api, http.MethodGet, "/reportes/vendedores/nadie")
	if rec.Code != http.StatusNotFound || !strings.Contains(rec.Body.String(), `"error"`) {
		t.Errorf("unknown code: %d %s, want 404 with the JSON error", rec.Code, rec.Body)
	}
	d.set(Health{})
	if rec := get(api, http.MethodGet, "/reportes/vendedores/S-01"); rec.Code != http.StatusServiceUnavailable {
		t.Errorf("not ready: %d, want 503", rec.Code)
	}
}
