// Package web is the live dashboard page: one HTML page, a script and a
// style sheet embedded in the binary, with no CDN and no build step.
//
// Handler serves the page at "/" and its files at "/assets/{name}". The
// page reads GET /reportes/dashboard/stream (Server-Sent Events) relative
// to where it was loaded, with fetch so that it can send the bearer token
// the user types when the stream answers 401; the page and its files hold
// no data and need no token themselves.
//
// Caching: the page is revalidated on every load (Cache-Control: no-cache
// and a strong ETag) and names its files with a digest of their content
// (assets/app.js?v=…), so a file asked for with the current digest is
// cached for a year and a new binary's page never runs an old script.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
)

//go:embed index.html app.js style.css
var files embed.FS

// AssetPrefix is the path under which Handler serves the page's files.
const AssetPrefix = "/assets/"

// assets are the files the page links to, by name.
var assets = []string{"app.js", "style.css"}

// Handler serves the page at "/" and its files under AssetPrefix; any
// other path is a 404.
func Handler() http.Handler { return site() }

var site = sync.OnceValue(newSite)

type file struct {
	contentType string
	plain       []byte
	gz          []byte // nil when compressing does not pay
	etag        string
	digest      string
}

type handler struct {
	page  *file
	files map[string]*file
}

func newSite() *handler {
	h := &handler{files: map[string]*file{}}
	page := read("index.html")
	for _, name := range assets {
		f := newFile(name, read(name))
		h.files[name] = f
		// The page names its files relatively ("assets/app.js"), so that it
		// also works behind a proxy that serves the API under a prefix.
		ref := strings.TrimPrefix(AssetPrefix, "/") + name
		page = bytes.ReplaceAll(page, []byte(`"`+ref+`"`), []byte(`"`+ref+"?v="+f.digest+`"`))
	}
	h.page = newFile("index.html", page)
	return h
}

func read(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time: cannot be missing
	}
	return b
}

func newFile(name string, body []byte) *file {
	sum := sha256.Sum256(body)
	digest := hex.EncodeToString(sum[:8])
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = http.DetectContentType(body)
	}
	return &file{contentType: ct, plain: body, gz: compress(body), etag: `"` + digest + `"`, digest: digest}
}

func compress(b []byte) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	_, _ = zw.Write(b)
	if zw.Close() != nil || buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":"method not allowed"}` + "\n"))
		return
	}
	hdr := w.Header()
	switch {
	case r.URL.Path == "/":
		hdr.Set("Cache-Control", "no-cache")
		// The script is the page's only code, and it talks to its own
		// origin only.
		hdr.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		hdr.Set("Referrer-Policy", "no-referrer")
		h.page.serve(w, r)
	case strings.HasPrefix(r.URL.Path, AssetPrefix):
		f := h.files[strings.TrimPrefix(r.URL.Path, AssetPrefix)]
		if f == nil {
			notFound(w)
			return
		}
		if r.URL.Query().Get("v") == f.digest {
			hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hdr.Set("Cache-Control", "no-cache")
		}
		f.serve(w, r)
	default:
		notFound(w)
	}
}

// notFound answers as the API does: a JSON error.
func notFound(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusNotFound)
	_, _ = w.Write([]byte(`{"error":"no such file"}` + "\n"))
}

// serve writes f, gzip-encoded when the client takes it, or 304 when the
// client holds it already. The two encodings have distinct ETags, as
// RFC 9110 asks of different representations.
func (f *file) serve(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Vary", "Accept-Encoding")
	hdr.Set("X-Content-Type-Options", "nosniff")
	body, etag := f.plain, f.etag
	if f.gz != nil && AcceptsGzip(r) {
		body, etag = f.gz, `"`+f.digest+`-gz"`
		hdr.Set("Content-Encoding", "gzip")
	}
	hdr.Set("ETag", etag)
	if matches(r.Header.Get("If-None-Match"), etag) {
		hdr.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", f.contentType)
	hdr.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// matches reports whether an If-None-Match header names etag (weak
// comparison, as RFC 9110 prescribes for If-None-Match).
func matches(header, etag string) bool {
	for t := range strings.SplitSeq(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == "*" || t == etag {
			return true
		}
	}
	return false
}

// AcceptsGzip reports whether the response to r may be gzip-encoded, by
// the rule gzhttp follows: "gzip" with a q-value above 0 in
// Accept-Encoding, and never for HEAD, which answers with the identity
// headers (nginx mishandles HEAD responses with Content-Encoding).
func AcceptsGzip(r *http.Request) bool {
	if r.Method == http.MethodHead {
		return false
	}
	for _, v := range r.Header.Values("Accept-Encoding") {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			return qValue(params) > 0
		}
	}
	return false
}

// qValue parses the parameters of one coding ("q=0.5"); 1 without q.
func qValue(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && strings.EqualFold(p[:2], "q=") {
			q, err := strconv.ParseFloat(p[2:], 64)
			if err != nil {
				return 0
			}
			return q
		}
	}
	return 1
}
