package httpapi

import (
	"embed"
	"io/fs"
	"net/http"

	"github.com/gorilla/mux"
)

// OpenAPI is the OpenAPI 3 document of the API, served at /openapi.json.
//
//go:embed openapi.json
var OpenAPI []byte

// assets holds Swagger UI and ReDoc, copied from their npm packages
// (see assets/VERSIONS), so the documentation works without a CDN.
//
//go:embed assets
var assets embed.FS

// public lists the paths served without a bearer token.
func public(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc":
		return true
	}
	return len(path) > len("/docs/assets/") && path[:len("/docs/assets/")] == "/docs/assets/"
}

func docRoutes(r *mux.Router) {
	static, _ := fs.Sub(assets, "assets")
	page := func(name string) http.HandlerFunc {
		body, _ := fs.ReadFile(static, name)
		return func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = w.Write(body)
		}
	}
	r.HandleFunc("/openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(OpenAPI)
	}).Methods(http.MethodGet)
	r.HandleFunc("/docs", page("swagger.html")).Methods(http.MethodGet)
	r.HandleFunc("/redoc", page("redoc.html")).Methods(http.MethodGet)
	files := http.StripPrefix("/docs/assets/", http.FileServerFS(static))
	r.HandleFunc("/docs/assets/{file}", func(w http.ResponseWriter, req *http.Request) {
		if _, err := fs.Stat(static, mux.Vars(req)["file"]); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such file"})
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		files.ServeHTTP(w, req)
	}).Methods(http.MethodGet)
}
