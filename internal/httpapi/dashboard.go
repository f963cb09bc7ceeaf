package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/reportes/reportes/pkg/projection"
)

// Health is what the API tells clients about how far to trust the view.
type Health struct {
	// Ready: the view caught up with the stream at least once. Until then
	// the dashboard answers 503: its zeros would be a lie.
	Ready bool
	// Err says why the stream cannot be read now (nil when it can), in
	// words an operator can act on: it names NATS as configured, redacted.
	Err error
	// Since is when the stream stopped being readable; zero when Err is nil.
	Since time.Time
	// Seq is the stream sequence the view has applied, for saying how far
	// a view that is not ready got; it may be left zero when Ready.
	Seq uint64
}

// healthReporter is a Dashboard that knows more than Ready: why the stream
// cannot be read and since when.
type healthReporter interface {
	Health() Health
}

// healthOf returns how to read d's health: from its Health method when it
// has one, from Ready otherwise.
func healthOf(d Dashboard) func() Health {
	if hr, ok := d.(healthReporter); ok {
		return hr.Health
	}
	return func() Health { return Health{Ready: d.Ready()} }
}

// notReady says why a view that never caught up is not served.
func (h Health) notReady() string {
	if h.Err != nil {
		return h.Err.Error()
	}
	return fmt.Sprintf("the view is catching up with the event stream (at seq %d)", h.Seq)
}

// Retry-After values of a 503: a view catching up is usually ready within
// the second; the projector retries an unreachable stream at most every 5 s.
const (
	retryCatchingUp  = "1"
	retryUnreachable = "5"
)

// StaleHeader carries, on a dashboard served while the stream cannot be
// read, the whole seconds since it stopped being readable.
const StaleHeader = "X-Reportes-Stale"

// dashboardHandler serves the dashboard: 503 until the view is ready, the
// cached body while the stream can be read, and the last view marked stale
// while it cannot. Its ETag is the view's sequence; the query filters and
// limits the detail, the totals unchanged.
type dashboardHandler struct {
	d       Dashboard
	health  func() Health
	stale   staleCache
	gz      gzipCache
	decoded decoded
}

func newDashboardHandler(d Dashboard) *dashboardHandler {
	return &dashboardHandler{d: d, health: healthOf(d)}
}

func (dh *dashboardHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f, err := parseFilter(r.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	body, h, ok := dh.current(w, r)
	if !ok || notModified(w, r, etag(body, h)) {
		return
	}
	if f.none() {
		writeBody(w, r, "application/json", body, func() []byte { return dh.gz.get(body) })
		return
	}
	d, _, err := dh.decoded.get(body)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	f.apply(&d)
	if h.Err != nil {
		writeJSON(w, http.StatusOK, staleOf(d, h))
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// current returns the body to serve and the health it was read with, or
// answers 503 (not ready) and returns false. A stale body is marked.
func (dh *dashboardHandler) current(w http.ResponseWriter, _ *http.Request) ([]byte, Health, bool) {
	h := dh.health()
	w.Header().Set("Cache-Control", "no-cache")
	if !h.Ready {
		retry := retryCatchingUp
		if h.Err != nil {
			retry = retryUnreachable
		}
		w.Header().Set("Retry-After", retry)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": h.notReady()})
		return nil, h, false
	}
	body := dh.d.JSON()
	if h.Err != nil {
		body = dh.stale.render(body, h)
		w.Header().Set(StaleHeader, strconv.FormatInt(staleSeconds(h.Since, time.Now()), 10))
	}
	return body, h, true
}

// staleSeconds is how long the stream has been unreadable, in whole
// seconds, never negative.
func staleSeconds(since, now time.Time) int64 {
	if since.IsZero() || now.Before(since) {
		return 0
	}
	return int64(now.Sub(since) / time.Second)
}

// staleDashboard is the dashboard with the fields that say it is stale:
// its Frescura shadows the embedded one, so fields keep their order.
type staleDashboard struct {
	projection.Dashboard
	Frescura staleFreshness `json:"frescura"`
}

type staleFreshness struct {
	projection.Freshness
	Conectado        bool      `json:"conectado"`
	SinConexionDesde time.Time `json:"sin_conexion_desde"`
	Error            string    `json:"error"`
}

// staleOf is d with the fields that say it is stale.
func staleOf(d projection.Dashboard, h Health) staleDashboard {
	sd := staleDashboard{Dashboard: d}
	sd.Frescura.Freshness = d.Frescura
	sd.Frescura.SinConexionDesde = h.Since.UTC()
	sd.Frescura.Error = h.Err.Error()
	return sd
}

// staleCache keeps the stale rendering of one body, so an outage costs one
// re-encoding per view change or change of reason, not one per request.
type staleCache struct {
	mu   sync.Mutex
	key  staleKey
	body []byte
}

type staleKey struct {
	src   *byte // identity of the body rendered
	n     int
	since int64
	err   string
}

// render returns body with the stale fields added to its frescura block;
// body itself when it is not a dashboard (it is served as it is then).
func (c *staleCache) render(body []byte, h Health) []byte {
	key := staleKey{src: first(body), n: len(body), since: h.Since.UnixNano(), err: h.Err.Error()}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.body != nil && c.key == key {
		return c.body
	}
	var d projection.Dashboard
	if err := json.Unmarshal(body, &d); err != nil {
		return body
	}
	out, err := json.Marshal(staleOf(d, h))
	if err != nil {
		return body
	}
	c.key, c.body = key, append(out, '\n')
	return c.body
}

// first identifies a byte slice by its first element: Dashboard.JSON
// returns a new slice whenever the dashboard changes.
func first(b []byte) *byte {
	if len(b) == 0 {
		return nil
	}
	return &b[0]
}
