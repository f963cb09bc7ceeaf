package web

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, path string, hdr map[string]string) *http.Response {
	t.Helper()
	return do(t, http.MethodGet, path, hdr)
}

func do(t *testing.T, method, path string, hdr map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	Handler().ServeHTTP(rec, req)
	return rec.Result()
}

func body(t *testing.T, resp *http.Response) string {
	t.Helper()
	var r io.Reader = resp.Body
	if resp.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRoutes(t *testing.T) {
	for _, tc := range []struct {
		path, contentType string
		code              int
		contains          string
	}{
		{"/", "text/html; charset=utf-8", http.StatusOK, `<table id="vendedores">`},
		{"/assets/app.js", "text/javascript; charset=utf-8", http.StatusOK, "reportes/dashboard/stream"},
		{"/assets/style.css", "text/css; charset=utf-8", http.StatusOK, ":root"},
		{"/assets/index.html", "application/json", http.StatusNotFound, "no such file"},
		{"/assets/", "application/json", http.StatusNotFound, "no such file"},
		{"/assets/../web.go", "application/json", http.StatusNotFound, "no such file"},
		{"/index.html", "application/json", http.StatusNotFound, "no such file"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			resp := get(t, tc.path, nil)
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if ct := resp.Header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			if b := body(t, resp); !strings.Contains(b, tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
		})
	}
}

// The page names its files with their digest, and a file asked for with
// the current digest may be cached for good.
func TestPageVersionsAssets(t *testing.T) {
	page := body(t, get(t, "/", nil))
	re := regexp.MustCompile(`"assets/(app\.js|style\.css)\?v=([0-9a-f]{16})"`)
	refs := re.FindAllStringSubmatch(page, -1)
	if len(refs) != len(assets) {
		t.Fatalf("page names %d versioned files, want %d:\n%s", len(refs), len(assets), page)
	}
	for _, ref := range refs {
		resp := get(t, "/assets/"+ref[1]+"?v="+ref[2], nil)
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("%s with its digest: Cache-Control %q, want immutable", ref[1], cc)
		}
		resp = get(t, "/assets/"+ref[1]+"?v=old", nil)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("%s with another digest: Cache-Control %q, want no-cache", ref[1], cc)
		}
	}
	if cc := get(t, "/", nil).Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page: Cache-Control %q, want no-cache", cc)
	}
}

func TestConditionalAndEncoding(t *testing.T) {
	for _, path := range []string{"/", "/assets/app.js", "/assets/style.css"} {
		t.Run(path, func(t *testing.T) {
			plain := get(t, path, nil)
			zipped := get(t, path, map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
			if zipped.Header.Get("Content-Encoding") != "gzip" {
				t.Fatal("gzip offered but not used")
			}
			if get(t, path, map[string]string{"Accept-Encoding": "gzip;q=0"}).Header.Get("Content-Encoding") != "" {
				t.Error("gzip;q=0 answered with gzip")
			}
			if a, b := body(t, plain), body(t, zipped); a != b {
				t.Error("gzip body differs from the plain one")
			}
			if plain.Header.Get("ETag") == zipped.Header.Get("ETag") {
				t.Error("both encodings have the same ETag")
			}
			if v := zipped.Header.Get("Vary"); v != "Accept-Encoding" {
				t.Errorf("Vary %q", v)
			}
			for _, resp := range []*http.Response{plain, zipped} {
				etag := resp.Header.Get("ETag")
				again := get(t, path, map[string]string{"If-None-Match": `"x", W/` + etag, "Accept-Encoding": resp.Header.Get("Content-Encoding")})
				if again.StatusCode != http.StatusNotModified {
					t.Errorf("If-None-Match %s: status %d, want 304", etag, again.StatusCode)
				}
				if again.Header.Get("ETag") != etag || body(t, again) != "" {
					t.Errorf("304 with ETag %q and a body", again.Header.Get("ETag"))
				}
			}
			if get(t, path, map[string]string{"If-None-Match": `"other"`}).StatusCode != http.StatusOK {
				t.Error("a stale ETag got no body")
			}
		})
	}
}

func TestHeadAndMethods(t *testing.T) {
	head := do(t, http.MethodHead, "/assets/app.js", map[string]string{"Accept-Encoding": "gzip"})
	if head.StatusCode != http.StatusOK || head.Header.Get("Content-Encoding") != "" || head.Header.Get("Content-Length") == "" {
		t.Errorf("HEAD: %d, encoding %q, length %q", head.StatusCode, head.Header.Get("Content-Encoding"), head.Header.Get("Content-Length"))
	}
	if b, _ := io.ReadAll(head.Body); len(b) != 0 {
		t.Error("HEAD has a body")
	}
	post := do(t, http.MethodPost, "/", nil)
	if post.StatusCode != http.StatusMethodNotAllowed || post.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", post.StatusCode, post.Header.Get("Allow"))
	}
}

func TestPageSecurityHeaders(t *testing.T) {
	resp := get(t, "/", nil)
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no X-Content-Type-Options: nosniff")
	}
}

// The page is meant to stay light and self-contained: no file of another
// origin, and its script and style sheet under 30 KB together.
func TestPageIsSelfContained(t *testing.T) {
	var size int
	for _, name := range append([]string{"index.html"}, assets...) {
		b := read(name)
		if name != "index.html" {
			size += len(b)
		}
		for _, bad := range [][]byte{[]byte("http://"), []byte("https://"), []byte("//cdn")} {
			for _, line := range bytes.Split(b, []byte("\n")) {
				if bytes.Contains(line, bad) && !bytes.Contains(line, []byte("www.w3.org/")) {
					t.Errorf("%s refers to another origin: %s", name, bytes.TrimSpace(line))
				}
			}
		}
	}
	if size > 30<<10 {
		t.Errorf("script and style sheet weigh %d bytes, want at most %d", size, 30<<10)
	}
}
