package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/gorilla/mux"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

func loadSpec(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI 3 document: %v", err)
	}
	return doc
}

// TestEveryRouteIsDocumented walks the router and checks each route and
// method is in openapi.json.
func TestEveryRouteIsDocumented(t *testing.T) {
	doc := loadSpec(t)
	routes := 0
	err := router(&fake{}, newOptions([]Option{WithStream(http.NotFoundHandler()), WithRebuild(&fakeRebuilder{})})).Walk(func(route *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		tpl, err := route.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, _ := route.GetMethods()
		item := doc.Paths.Value(tpl)
		if item == nil {
			t.Errorf("route %s is not in openapi.json", tpl)
			return nil
		}
		for _, m := range methods {
			if m == http.MethodHead {
				continue
			}
			if item.GetOperation(m) == nil {
				t.Errorf("%s %s is not in openapi.json", m, tpl)
			}
		}
		routes++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if routes < 8 || doc.Paths.Len() != routes {
		t.Errorf("router has %d routes, openapi.json %d paths", routes, doc.Paths.Len())
	}
}

// TestDashboardMatchesSchema renders a real view and validates it against
// the Dashboard schema.
func TestDashboardMatchesSchema(t *testing.T) {
	doc := loadSpec(t)
	schema := doc.Paths.Value("/reportes/dashboard").Get.Responses.Status(200).Value.Content["application/json"].Schema.Value

	v, _ := projection.NewView(projection.DefaultSchema())
	validate := func() {
		t.Helper()
		var body any
		if err := json.Unmarshal(v.JSON(), &body); err != nil {
			t.Fatal(err)
		}
		if err := schema.VisitJSON(body); err != nil {
			t.Fatalf("dashboard %s does not match its schema: %v", v.JSON(), err)
		}
	}
	validate() // empty view: nulls in frescura
	now := time.Now()
	evs := []cdc.Event{
		{ID: "1", Source: "postgres", Collection: "public.empleados", Op: cdc.OpInsert, Key: "S-01", CommitTime: now, After: json.RawMessage(`{"codigo":"S-01","rol":"operario","activo":true}`)},
		{ID: "2", Source: "postgres", Collection: "public.empleados", Op: cdc.OpInsert, Key: "S-02", CommitTime: now, After: json.RawMessage(`{"codigo":"S-02","rol":null,"activo":null}`)},
		{ID: "3", Source: "mongo", Collection: "inventory_db.orders", Op: cdc.OpInsert, Key: "a", CommitTime: now, After: json.RawMessage(`{"vendedor":"S-01"}`)},
	}
	for i := range evs {
		_, _ = v.Apply(&evs[i], uint64(i+1))
	}
	validate()
}

func TestDocsPages(t *testing.T) {
	h := New(&fake{}, WithBearerToken("t"))
	for path, want := range map[string]string{
		"/docs":                             "swagger-ui-bundle.js",
		"/redoc":                            "redoc.standalone.js",
		"/openapi.json":                     `"openapi": "3.0.3"`,
		"/docs/assets/swagger-ui-bundle.js": "SwaggerUIBundle",
		"/docs/assets/redoc.standalone.js":  "Redoc",
		"/docs/assets/swagger-ui.css":       ".swagger-ui",
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s = %d, want 200 containing %q", path, rec.Code, want)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/docs/assets/nope.js", nil))
	if rec.Code != 404 {
		t.Errorf("missing asset = %d", rec.Code)
	}
}

// validateDashboard checks body against the documented Dashboard schema.
func validateDashboard(t *testing.T, body []byte) {
	t.Helper()
	schema := loadSpec(t).Paths.Value("/reportes/dashboard").Get.Responses.Status(200).Value.Content["application/json"].Schema.Value
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatal(err)
	}
	if err := schema.VisitJSON(v); err != nil {
		t.Errorf("dashboard %s does not match its schema: %v", body, err)
	}
}

// TestServerIsRelative: "Try it out" must call the host and port the
// document was loaded from, not a fixed one.
func TestServerIsRelative(t *testing.T) {
	doc := loadSpec(t)
	if len(doc.Servers) != 1 || doc.Servers[0].URL != "/" {
		t.Errorf("servers = %v, want one relative server /", doc.Servers)
	}
}

// TestDashboardRuleIsDocumented: the 503 before ready and the stale marks
// after it are in the document.
func TestDashboardRuleIsDocumented(t *testing.T) {
	op := loadSpec(t).Paths.Value("/reportes/dashboard").Get
	ok := op.Responses.Status(200).Value
	if ok.Headers[StaleHeader] == nil || ok.Headers["Content-Encoding"] == nil {
		t.Errorf("200 does not document %s and Content-Encoding", StaleHeader)
	}
	unavailable := op.Responses.Status(503)
	if unavailable == nil || unavailable.Value.Headers["Retry-After"] == nil {
		t.Fatal("503 with Retry-After is not documented")
	}
	fresh := ok.Content["application/json"].Schema.Value.Properties["frescura"].Value.Properties
	for _, f := range []string{"conectado", "sin_conexion_desde", "error"} {
		if fresh[f] == nil {
			t.Errorf("frescura.%s is not documented", f)
		}
	}
}
