package httpapi

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// DebugHandler serves the Go runtime's profiles (net/http/pprof) under
// /debug/pprof/: CPU and heap profiles, goroutine dumps, execution traces.
// The binaries serve it only on an address of its own, never on their
// public port: profiles reveal internals, and a CPU profile or a trace
// costs CPU for as long as it runs. With a token, every request needs
// "Authorization: Bearer <token>", as the other routes do.
func DebugHandler(token string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("POST /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	return RequireToken(token, mux)
}

// ListenDebug listens on addr and returns the function that serves
// DebugHandler there until its context ends; with addr empty (profiles
// off) it returns nil. Listening first makes a busy or wrong address fail
// at start, not later in the background.
func ListenDebug(addr string, opts ...Option) (func(context.Context) error, error) {
	if addr == "" {
		return nil, nil
	}
	o := newOptions(opts)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for profiles: %w", err)
	}
	o.logger.Info("serving Go profiles", "addr", ln.Addr().String(), "path", "/debug/pprof/")
	// No write timeout: a CPU profile or a trace answers after the
	// seconds it was asked to run.
	srv := &http.Server{Handler: DebugHandler(o.token), ReadHeaderTimeout: 5 * time.Second}
	return func(ctx context.Context) error { return Serve(ctx, srv, ln, time.Second) }, nil
}
