// Package httpapi serves the dashboard view over HTTP with gorilla/mux:
// GET /reportes/dashboard (the original service's JSON), /healthz, /readyz,
// /metrics, the admin route of rebuilds (only with a bearer token), and the
// OpenAPI document with Swagger UI (/docs) and ReDoc (/redoc) embedded in
// the binary. Every error is a JSON object {"error": "..."} with a proper
// status code; handlers never touch the sources, only the in-memory view.
package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/reportes/reportes/internal/httpapi/web"
)

// Dashboard is what the API serves: the encoded dashboard and whether the
// view has caught up with the stream. JSON must return a new slice when the
// dashboard changes and never modify one it returned: the API caches what
// it derives from a body (its gzip encoding) by the slice's identity.
//
// A Dashboard that also has a method Health() Health gets the truthful
// answers: why it is not ready, and the last view marked stale while the
// stream cannot be read. Without it, Ready alone decides.
type Dashboard interface {
	JSON() []byte
	Ready() bool
}

var metricRequests = promauto.NewHistogramVec(prometheus.HistogramOpts{
	Name:    "reportes_http_request_duration_seconds",
	Help:    "HTTP request latency by route and status code.",
	Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
}, []string{"route", "code"})

// maxRequestBytes bounds what the API reads of a request: none of its routes
// takes a body.
const maxRequestBytes = 1 << 16

// Option configures the handler (New) or the profiles' listener
// (ListenDebug).
type Option func(*options)

type options struct {
	token   string
	logger  *slog.Logger
	stream  http.Handler
	rebuild Rebuilder
}

func newOptions(opts []Option) options {
	o := options{logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithBearerToken requires "Authorization: Bearer <token>" on every route
// but the probes (/healthz, /readyz) and the documentation; on every
// request to the profiles. Empty requires none.
func WithBearerToken(token string) Option { return func(o *options) { o.token = token } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithStream serves stream (Server-Sent Events of the dashboard) at
// /reportes/dashboard/stream, behind the same readiness rule as the
// dashboard: 503 until the view has caught up once.
func WithStream(stream http.Handler) Option { return func(o *options) { o.stream = stream } }

// New returns the API handler.
func New(d Dashboard, opts ...Option) http.Handler {
	o := newOptions(opts)
	return compressed(recoverer(limitBody(RequireToken(o.token, router(d, o))), o.logger))
}

func router(d Dashboard, o options) *mux.Router {
	r := mux.NewRouter()
	dataRoutes(r, d, o.stream)
	r.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/readyz", readyz(healthOf(d))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.Handler()).Methods(http.MethodGet)
	adminRoutes(r, o)
	docRoutes(r)
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no route " + r.URL.Path})
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method " + r.Method + " not allowed on " + r.URL.Path})
	})
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			start := time.Now()
			sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
			next.ServeHTTP(sw, req)
			route := "unmatched"
			if cr := mux.CurrentRoute(req); cr != nil {
				route, _ = cr.GetPathTemplate()
			}
			metricRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
		})
	})
	return r
}

// readiness is the body of /readyz.
type readiness struct {
	Status     string     `json:"status"`
	Error      string     `json:"error,omitempty"`
	Since      *time.Time `json:"since,omitempty"`
	ForSeconds *int64     `json:"for_seconds,omitempty"`
}

// readyz answers 503 until the view caught up with the stream once, then
// 200: "ready", or "stale" with why and since when the stream cannot be
// read. A stale replica stays in its load balancer on purpose: every
// replica shares the same NATS, so failing readiness on it would take all
// of them out at once and leave clients with no dashboard at all, where
// the API means to serve the last view marked stale.
func readyz(health func() Health) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		h := health()
		var body readiness
		code := http.StatusOK
		switch {
		case !h.Ready:
			code, body.Status, body.Error = http.StatusServiceUnavailable, "not ready", h.notReady()
		case h.Err != nil:
			body.Status, body.Error = "stale", h.Err.Error()
		default:
			body.Status = "ready"
		}
		if h.Err != nil && !h.Since.IsZero() {
			since, secs := h.Since.UTC(), staleSeconds(h.Since, time.Now())
			body.Since, body.ForSeconds = &since, &secs
		}
		writeJSON(w, code, body)
	}
}

// RequireToken wraps next so that, when token is not empty, every request
// but the probes must carry it as a bearer token.
func RequireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if public(req.URL.Path) ||
			subtle.ConstantTimeCompare([]byte(req.Header.Get("Authorization")), want) == 1 {
			next.ServeHTTP(w, req)
			return
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="reportes"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or wrong bearer token"})
	})
}

// limitBody refuses requests announcing a body larger than maxRequestBytes
// and cuts off those that send more than they announced.
func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.ContentLength > maxRequestBytes {
			writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large"})
			return
		}
		req.Body = http.MaxBytesReader(w, req.Body, maxRequestBytes)
		next.ServeHTTP(w, req)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

// dataRoutes serves the view: the dashboard, one seller, the event stream
// and the live page.
func dataRoutes(r *mux.Router, d Dashboard, stream http.Handler) {
	dash := newDashboardHandler(d)
	r.Handle("/reportes/dashboard", dash).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/reportes/vendedores/{codigo}", sellerHandler{dash}).Methods(http.MethodGet, http.MethodHead)
	if stream != nil {
		r.Handle("/reportes/dashboard/stream", whenReady(dash, stream)).Methods(http.MethodGet)
	}
	r.Handle("/", web.Handler()).Methods(http.MethodGet, http.MethodHead)
	r.PathPrefix(web.AssetPrefix).Handler(web.Handler()).Methods(http.MethodGet, http.MethodHead)
}

// Unwrap lets http.ResponseController reach the connection (flushes and
// write deadlines of the event stream).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

func recoverer(next http.Handler, logger *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler { //nolint:errorlint // sentinel compared by identity, as net/http does
					panic(v)
				}
				logger.Error("handler panicked", "path", r.URL.Path, "panic", v)
				writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error"})
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteJSON answers with status code and v as a JSON body, as every route
// of the API does: for other servers of the project (the ingestor's admin
// routes) to answer the same way.
func WriteJSON(w http.ResponseWriter, code int, v any) { writeJSON(w, code, v) }

// Serve serves srv on ln until ctx ends, then shuts it down gracefully,
// giving requests in flight up to grace to finish.
func Serve(ctx context.Context, srv *http.Server, ln net.Listener, grace time.Duration) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("shut down http: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve http: %w", err)
	}
	return nil
}
