package httpapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/reportes/reportes/pkg/projection"
)

// RebuildPath is the admin route of rebuilds: POST starts one, GET says
// how the last one goes.
const RebuildPath = "/reportes/admin/rebuild"

// Rebuilder rebuilds the view beside the served one and swaps it in
// (projection.Serving). Rebuild starts one and returns its status at
// once; its errors wrap projection.ErrRebuildRunning, ErrNotReady,
// ErrBadStart or ErrLacksHistory when the caller is to blame.
type Rebuilder interface {
	Rebuild(ctx context.Context, from projection.RebuildFrom) (projection.RebuildStatus, error)
	// LastRebuild is the running rebuild or the last one; false before the
	// first.
	LastRebuild() (projection.RebuildStatus, bool)
}

// WithRebuild serves RebuildPath with r. The route needs a bearer token:
// without one (no WithBearerToken) it answers 403, since anyone reaching
// the port could otherwise make the API hold a second view and replay the
// whole stream.
func WithRebuild(r Rebuilder) Option { return func(o *options) { o.rebuild = r } }

// rebuildError is an error answer that carries the rebuild it is about.
type rebuildError struct {
	Error   string                    `json:"error"`
	Rebuild *projection.RebuildStatus `json:"rebuild,omitempty"`
}

// adminRoutes serves the admin routes of o: the rebuilds, when there is a
// Rebuilder.
func adminRoutes(r *mux.Router, o options) {
	if o.rebuild == nil {
		return
	}
	r.Handle(RebuildPath, rebuildHandler{r: o.rebuild, token: o.token}).Methods(http.MethodPost, http.MethodGet, http.MethodHead)
}

// rebuildHandler serves RebuildPath.
type rebuildHandler struct {
	r     Rebuilder
	token string
}

func (h rebuildHandler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if h.token == "" {
		writeJSON(w, http.StatusForbidden, map[string]string{
			"error": "admin routes are off while API_TOKEN is unset: set it, and send it as Authorization: Bearer <token>",
		})
		return
	}
	if req.Method == http.MethodPost {
		h.start(w, req)
		return
	}
	st, ok := h.r.LastRebuild()
	if !ok {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no rebuild since the API started"})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (h rebuildHandler) start(w http.ResponseWriter, req *http.Request) {
	from, err := parseRebuildFrom(req.URL.Query())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	st, err := h.r.Rebuild(req.Context(), from)
	if err == nil {
		w.Header().Set("Location", RebuildPath)
		writeJSON(w, http.StatusAccepted, st)
		return
	}
	body := rebuildError{Error: err.Error()}
	code := http.StatusServiceUnavailable // the stream cannot be read now
	switch {
	case errors.Is(err, projection.ErrRebuildRunning):
		code = http.StatusConflict
		if last, ok := h.r.LastRebuild(); ok {
			body.Rebuild = &last
		}
	case errors.Is(err, projection.ErrNotReady):
		code = http.StatusConflict
	case errors.Is(err, projection.ErrBadStart):
		code = http.StatusBadRequest
	case errors.Is(err, projection.ErrLacksHistory):
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, body)
}

// parseRebuildFrom reads from_seq or from_time (RFC 3339); any other
// parameter, or a bad value, is an error naming it.
func parseRebuildFrom(q url.Values) (projection.RebuildFrom, error) {
	var from projection.RebuildFrom
	for name, vals := range q {
		if len(vals) != 1 {
			return from, fmt.Errorf("query parameter %s is given %d times, want once", name, len(vals))
		}
		v := vals[0]
		switch name {
		case "from_seq":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil || n < 1 {
				return from, fmt.Errorf("query parameter from_seq=%q: want a stream sequence of at least 1", v)
			}
			from.Seq = n
		case "from_time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return from, fmt.Errorf("query parameter from_time=%q: want an RFC 3339 time like 2026-11-27T23:00:00Z", v)
			}
			from.Time = t
		default:
			return from, fmt.Errorf("unknown query parameter %q: want from_seq or from_time", name)
		}
	}
	if from.Seq != 0 && !from.Time.IsZero() {
		return from, errors.New("give from_seq or from_time, not both")
	}
	return from, nil
}
