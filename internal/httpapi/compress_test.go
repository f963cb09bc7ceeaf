package httpapi

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/reportes/reportes/pkg/projection"
)

func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not gzip: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// bigDashboard is the body of a dashboard of n sellers.
func bigDashboard(n int) []byte {
	d := projection.Dashboard{Titulo: "Dashboard Operativo - Sprint 4"}
	for i := range n {
		d.DetallePorVendedor = append(d.DetallePorVendedor, projection.Seller{
			Empleado: fmt.Sprintf("S-%05d", i), Rol: "operario", PedidosRealizados: int64(n - i), Estado: "Activo",
		})
	}
	b, _ := json.Marshal(d)
	return append(b, '\n')
}

// TestGzip: the dashboard, the OpenAPI document and the documentation
// assets honour Accept-Encoding: gzip, with the right Content-Length and
// Vary; clients without gzip and HEAD get the identity body's headers.
func TestGzip(t *testing.T) {
	dash := bigDashboard(200)
	h := New(&healthy{body: dash, health: Health{Ready: true}})
	swagger, _ := assets.ReadFile("assets/swagger-ui-bundle.js")
	for _, tt := range []struct {
		path string
		want []byte
	}{
		{"/reportes/dashboard", dash},
		{"/openapi.json", OpenAPI},
		{"/docs/assets/swagger-ui-bundle.js", swagger},
	} {
		t.Run(tt.path, func(t *testing.T) {
			for _, ae := range []string{"gzip", "deflate, gzip;q=0.8", "br, zstd, gzip"} {
				rec := get(h, "GET", tt.path, "Accept-Encoding", ae)
				if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "gzip" {
					t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q", ae, rec.Code, rec.Header().Get("Content-Encoding"))
				}
				checkHeaders(t, rec.Header(), rec.Body.Len())
				if !bytes.Equal(gunzip(t, rec.Body.Bytes()), tt.want) {
					t.Fatal("the gzip body is not the identity body compressed")
				}
			}
			for _, ae := range []string{"", "identity", "gzip;q=0", "deflate"} {
				rec := get(h, "GET", tt.path, "Accept-Encoding", ae)
				if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "" || !bytes.Equal(rec.Body.Bytes(), tt.want) {
					t.Fatalf("Accept-Encoding %q: %d, Content-Encoding %q, want the identity body", ae, rec.Code, rec.Header().Get("Content-Encoding"))
				}
				checkHeaders(t, rec.Header(), len(tt.want))
			}
		})
	}
	rec := get(h, "HEAD", "/reportes/dashboard", "Accept-Encoding", "gzip")
	if rec.Code != 200 || rec.Header().Get("Content-Encoding") != "" || rec.Body.Len() != 0 {
		t.Errorf("HEAD: %d, Content-Encoding %q, %d body bytes", rec.Code, rec.Header().Get("Content-Encoding"), rec.Body.Len())
	}
	checkHeaders(t, rec.Header(), len(dash))
}

func checkHeaders(t *testing.T, h http.Header, length int) {
	t.Helper()
	if got := h.Get("Content-Length"); got != strconv.Itoa(length) {
		t.Errorf("Content-Length = %q, want %d", got, length)
	}
	if got := h.Values("Vary"); len(got) != 1 || got[0] != "Accept-Encoding" {
		t.Errorf("Vary = %q, want Accept-Encoding once", got)
	}
}

// TestGzipIsCached: the dashboard is compressed once per view change, the
// static files once.
func TestGzipIsCached(t *testing.T) {
	var c gzipCache
	a := bigDashboard(100)
	if z1, z2 := c.get(a), c.get(a); first(z1) != first(z2) {
		t.Error("the same body was compressed twice")
	}
	b := bigDashboard(101)
	if z := c.get(b); !bytes.Equal(gunzip(t, z), b) {
		t.Error("a new body got the old encoding")
	}
	s := docAssets()["swagger-ui-bundle.js"]
	if z1, z2 := s.gz(), s.gz(); first(z1) != first(z2) {
		t.Error("a static file was compressed twice")
	}
	if docAssets()["swagger.html"].gz() != nil && len(docAssets()["swagger.html"].gz()) >= len(docAssets()["swagger.html"].plain) {
		t.Error("a body that does not shrink must be served as it is")
	}
}

// TestAssetRanges: the identity asset still answers ranges.
func TestAssetRanges(t *testing.T) {
	h := New(&fake{})
	rec := get(h, "GET", "/docs/assets/swagger-ui.css", "Range", "bytes=0-9", "Accept-Encoding", "gzip")
	if rec.Code != http.StatusPartialContent || rec.Body.Len() != 10 || rec.Header().Get("Content-Encoding") != "" {
		t.Errorf("range: %d, %d bytes, Content-Encoding %q", rec.Code, rec.Body.Len(), rec.Header().Get("Content-Encoding"))
	}
	if ct := rec.Header().Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
}

// discard is a ResponseWriter that keeps nothing, so the benchmark
// measures the handler.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkDashboardGET: a gzip GET of an unchanged view costs about what
// an identity GET does (1,000 sellers).
func BenchmarkDashboardGET(b *testing.B) {
	body := bigDashboard(1000)
	h := New(&healthy{body: body, health: Health{Ready: true}})
	for _, ae := range []string{"identity", "gzip"} {
		b.Run(ae, func(b *testing.B) {
			req, _ := http.NewRequest("GET", "/reportes/dashboard", nil)
			req.Header.Set("Accept-Encoding", ae)
			w := &discard{h: http.Header{}}
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, req)
			}
		})
	}
}
