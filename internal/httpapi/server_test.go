package httpapi

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

type fake struct {
	body  []byte
	ready bool
}

func (f *fake) JSON() []byte { return f.body }
func (f *fake) Ready() bool  { return f.ready }

func TestRoutes(t *testing.T) {
	d := &fake{body: []byte(`{"titulo":"x"}` + "\n"), ready: true}
	h := New(d)
	tests := []struct {
		method, path string
		body         string
		code         int
		contains     string
	}{
		{"GET", "/reportes/dashboard", "", 200, `"titulo":"x"`},
		{"HEAD", "/reportes/dashboard", "", 200, ""},
		{"GET", "/reportes/dashboard?x=%zz", "", 200, `"titulo"`},
		{"POST", "/reportes/dashboard", "", 405, `"error":"method POST not allowed`},
		{"GET", "/nope", "", 404, `"error":"no route /nope"`},
		{"GET", "/healthz", "", 200, `"ok"`},
		{"GET", "/readyz", "", 200, `"ready"`},
		{"GET", "/metrics", "", 200, "reportes_http_request_duration_seconds"},
		{"POST", "/reportes/dashboard", strings.Repeat("x", maxRequestBytes+1), 413, "too large"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.contains) {
			t.Errorf("%s %s = %d %q, want %d containing %q", tt.method, tt.path, rec.Code, rec.Body.String(), tt.code, tt.contains)
		}
		if rec.Code >= 400 {
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e["error"] == "" {
				t.Errorf("%s %s: error body is not a JSON error: %q", tt.method, tt.path, rec.Body.String())
			}
		}
	}
	// A Dashboard with Ready alone still gets no zeros before it is ready.
	d.ready = false
	for _, path := range []string{"/readyz", "/reportes/dashboard"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "catching up") {
			t.Errorf("GET %s when not ready = %d %q, want 503 catching up", path, rec.Code, rec.Body.String())
		}
	}
}

type panicky struct{}

func (panicky) JSON() []byte { panic("boom") }
func (panicky) Ready() bool  { return true }

func TestPanicsBecome500(t *testing.T) {
	rec := httptest.NewRecorder()
	New(panicky{}).ServeHTTP(rec, httptest.NewRequest("GET", "/reportes/dashboard", nil))
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), "internal error") {
		t.Fatalf("got %d %q", rec.Code, rec.Body.String())
	}
}

func TestBearerToken(t *testing.T) {
	h := New(&fake{body: []byte("{}"), ready: true}, WithBearerToken("s3cret"))
	for _, tt := range []struct {
		path, auth string
		code       int
	}{
		{"/reportes/dashboard", "", 401},
		{"/reportes/dashboard", "Bearer nope", 401},
		{"/reportes/dashboard", "Bearer s3cret", 200},
		{"/metrics", "", 401},
		{"/healthz", "", 200},
		{"/readyz", "", 200},
	} {
		req := httptest.NewRequest("GET", tt.path, nil)
		if tt.auth != "" {
			req.Header.Set("Authorization", tt.auth)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tt.code {
			t.Errorf("GET %s with %q = %d, want %d", tt.path, tt.auth, rec.Code, tt.code)
		}
	}
}
