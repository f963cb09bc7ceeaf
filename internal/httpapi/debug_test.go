package httpapi

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestListenDebug(t *testing.T) {
	// Find a free port, then let ListenDebug take it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	serve, err := ListenDebug(addr, WithBearerToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ListenDebug(addr); err == nil {
		t.Fatal("second ListenDebug on a busy address: no error")
	}
	if off, err := ListenDebug(""); off != nil || err != nil {
		t.Fatalf("ListenDebug with no address: serve func %t, error %v; want none", off != nil, err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- serve(ctx) }()

	get := func(path, token string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := get("/debug/pprof/", ""); code != http.StatusUnauthorized {
		t.Errorf("profiles without the token: status %d, want 401", code)
	}
	if code, body := get("/debug/pprof/", "s3cret"); code != http.StatusOK || !strings.Contains(body, "goroutine") {
		t.Errorf("profile index: status %d, body %.200q", code, body)
	}
	if code, body := get("/debug/pprof/goroutine?debug=1", "s3cret"); code != http.StatusOK || !strings.Contains(body, "TestListenDebug") {
		t.Errorf("goroutine dump: status %d, body %.200q", code, body)
	}
	if code, _ := get("/reportes/dashboard", "s3cret"); code != http.StatusNotFound {
		t.Errorf("the debug address serves the dashboard: status %d", code)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not return after its context ended")
	}
}
