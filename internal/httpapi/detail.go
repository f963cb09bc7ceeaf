package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/gorilla/mux"

	"github.com/reportes/reportes/pkg/projection"
)

// etag is the dashboard's entity tag: the view's sequence, and the outage
// it is marked with when stale. Weak, because the gzip and the identity
// encodings of one view are the same dashboard.
func etag(body []byte, h Health) string {
	tag := strconv.FormatUint(projection.DashboardSeq(body), 10)
	if h.Err != nil {
		tag += "-stale-" + strconv.FormatInt(h.Since.Unix(), 10)
	}
	return `W/"` + tag + `"`
}

// notModified answers 304 when the request's If-None-Match names tag.
func notModified(w http.ResponseWriter, r *http.Request, tag string) bool {
	w.Header().Set("ETag", tag)
	inm := r.Header.Get("If-None-Match")
	if inm == "" {
		return false
	}
	for _, t := range bytes.Split([]byte(inm), []byte(",")) {
		t = bytes.TrimSpace(t)
		if string(t) == "*" || string(bytes.TrimPrefix(t, []byte("W/"))) == tag[2:] {
			w.WriteHeader(http.StatusNotModified)
			return true
		}
	}
	return false
}

// filter is what GET /reportes/dashboard's query asks of the detail.
type filter struct {
	rol, estado string
	hasRol      bool
	limit       int // 0: all
}

func (f filter) none() bool { return !f.hasRol && f.estado == "" && f.limit == 0 }

// parseFilter reads rol, estado and limit; any other parameter, or a bad
// value, is an error naming it.
func parseFilter(q url.Values) (filter, error) {
	var f filter
	for name, vals := range q {
		if len(vals) != 1 {
			return f, fmt.Errorf("query parameter %s is given %d times, want once", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "rol":
			f.rol, f.hasRol = v, true
		case "estado":
			if v != "Activo" && v != "Inactivo" {
				return f, fmt.Errorf("query parameter estado=%q: want Activo or Inactivo", v)
			}
			f.estado = v
		case "limit":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return f, fmt.Errorf("query parameter limit=%q: want a whole number of at least 1", v)
			}
			f.limit = n
		default:
			return f, fmt.Errorf("unknown query parameter %q: want rol, estado or limit", name)
		}
	}
	return f, nil
}

func (f filter) apply(d *projection.Dashboard) {
	out := d.DetallePorVendedor[:0:0]
	for _, s := range d.DetallePorVendedor {
		if (f.hasRol && s.Rol != f.rol) || (f.estado != "" && s.Estado != f.estado) {
			continue
		}
		out = append(out, s)
		if f.limit > 0 && len(out) == f.limit {
			break
		}
	}
	d.DetallePorVendedor = out
}

// decoded keeps the last dashboard body decoded, with its sellers by
// code: the filtered and per-seller reads cost one decoding per view
// change, not one per request.
type decoded struct {
	mu     sync.Mutex
	src    []byte
	d      projection.Dashboard
	byCode map[string]int
}

func (c *decoded) get(body []byte) (projection.Dashboard, map[string]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.src != nil && same(c.src, body) {
		return c.d, c.byCode, nil
	}
	var d projection.Dashboard
	if err := json.Unmarshal(body, &d); err != nil {
		return d, nil, fmt.Errorf("decode dashboard: %w", err)
	}
	byCode := make(map[string]int, len(d.DetallePorVendedor))
	for i, s := range d.DetallePorVendedor {
		if _, dup := byCode[s.Empleado]; !dup {
			byCode[s.Empleado] = i
		}
	}
	c.src, c.d, c.byCode = body, d, byCode
	return d, byCode, nil
}

// sellerHandler serves GET /reportes/vendedores/{codigo}: one seller's line.
type sellerHandler struct{ dh *dashboardHandler }

func (sh sellerHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, h, ok := sh.dh.current(w, r)
	if !ok {
		return
	}
	code := mux.Vars(r)["codigo"]
	d, byCode, err := sh.dh.decoded.get(body)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	i, found := byCode[code]
	if !found {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no employee with code %q", code)})
		return
	}
	if notModified(w, r, etag(body, h)) {
		return
	}
	writeJSON(w, http.StatusOK, d.DetallePorVendedor[i])
}

// whenReady serves next (the event stream) once the view is ready, and
// answers like the dashboard (503 with the reason) before.
func whenReady(dh *dashboardHandler, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h := dh.health(); !h.Ready {
			dh.current(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
