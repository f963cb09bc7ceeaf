package httpapi

import (
	"bytes"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/mux"

	"github.com/reportes/reportes/internal/httpapi/web"
)

// OpenAPI is the OpenAPI 3 document of the API, served at /openapi.json.
// Its server is relative ("/"), so "Try it out" calls the host and port
// the page was loaded from.
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
	case "/healthz", "/readyz", "/openapi.json", "/docs", "/redoc", "/":
		return true // the page holds no data: it asks for the token itself
	}
	return strings.HasPrefix(path, "/docs/assets/") || strings.HasPrefix(path, web.AssetPrefix)
}

func docRoutes(r *mux.Router) {
	static := docAssets()
	r.Handle("/openapi.json", newStatic("application/json", OpenAPI)).Methods(http.MethodGet)
	r.Handle("/docs", static["swagger.html"]).Methods(http.MethodGet)
	r.Handle("/redoc", static["redoc.html"]).Methods(http.MethodGet)
	r.HandleFunc("/docs/assets/{file}", func(w http.ResponseWriter, req *http.Request) {
		name := mux.Vars(req)["file"]
		s := static[name]
		if s == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such file"})
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=86400")
		if web.AcceptsGzip(req) && req.Header.Get("Range") == "" {
			s.ServeHTTP(w, req)
			return
		}
		// Identity: ServeContent answers ranges as the file server did.
		w.Header().Set("Content-Type", s.contentType)
		http.ServeContent(w, req, name, time.Time{}, bytes.NewReader(s.plain))
	}).Methods(http.MethodGet)
}

// docAssets reads the embedded files once per process; each is compressed
// the first time a client asks for it with gzip.
var docAssets = sync.OnceValue(staticAssets)

func staticAssets() map[string]*static {
	files := map[string]*static{}
	_ = fs.WalkDir(assets, "assets", func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		body, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		ct := mime.TypeByExtension(path.Ext(p))
		if ct == "" {
			ct = http.DetectContentType(body)
		}
		files[path.Base(p)] = newStatic(ct, body)
		return nil
	})
	return files
}
