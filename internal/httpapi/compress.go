package httpapi

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/klauspost/compress/gzhttp"
	"github.com/klauspost/compress/gzip"

	"github.com/reportes/reportes/internal/httpapi/web"
)

// compressed wraps next with gzhttp, which compresses what the handlers
// render per request (probes, errors) for clients that accept gzip and
// sets Vary: Accept-Encoding. The dashboard and the documentation are
// compressed ahead by the handlers themselves (writeBody): gzhttp passes
// a response that already has a Content-Encoding through untouched.
func compressed(next http.Handler) http.Handler {
	// zstd off: the handlers' cached bodies are gzip, and a client
	// offering both would otherwise get zstd compressed per request.
	// Event streams pass uncompressed: a compressor per connection would
	// cost each client far more memory than the stream itself.
	wrap, err := gzhttp.NewWrapper(gzhttp.EnableZstd(false), gzhttp.ExceptContentTypes([]string{"text/event-stream"}))
	if err != nil {
		panic(err) // only invalid options fail, and these are constant
	}
	return wrap(next)
}

// writeBody writes plain, or what gz returns when the client accepts gzip
// and gz returns a body (nil: not worth compressing), with its
// Content-Type and Content-Length.
func writeBody(w http.ResponseWriter, r *http.Request, contentType string, plain []byte, gz func() []byte) {
	body := plain
	h := w.Header()
	if web.AcceptsGzip(r) {
		if z := gz(); z != nil {
			body = z
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// gzipBytes compresses b at level; nil when that does not make it smaller.
func gzipBytes(b []byte, level int) []byte {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		return nil
	}
	if _, err := zw.Write(b); err != nil {
		return nil
	}
	if err := zw.Close(); err != nil || buf.Len() >= len(b) {
		return nil
	}
	return buf.Bytes()
}

// gzipCache holds the gzip encoding of the last body it was asked for, so
// a gzip GET costs a compression per view change, not per request. A body
// is known by its identity: Dashboard.JSON returns a new slice when the
// dashboard changes.
type gzipCache struct {
	cur atomic.Pointer[gzipped]
	mu  sync.Mutex // one compression at a time; the others wait for it
}

type gzipped struct {
	plain []byte
	gz    []byte
}

func (c *gzipCache) get(plain []byte) []byte {
	if g := c.cur.Load(); g != nil && same(g.plain, plain) {
		return g.gz
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if g := c.cur.Load(); g != nil && same(g.plain, plain) {
		return g.gz
	}
	// The default level: a body changes with every event, and a better
	// ratio at several times the CPU is not worth it here.
	g := &gzipped{plain: plain, gz: gzipBytes(plain, gzip.DefaultCompression)}
	c.cur.Store(g)
	return g.gz
}

func same(a, b []byte) bool { return len(a) == len(b) && first(a) == first(b) }

// static is a body that never changes, compressed once, on first demand,
// at the best ratio.
type static struct {
	contentType string
	plain       []byte
	gz          func() []byte
}

func newStatic(contentType string, plain []byte) *static {
	return &static{
		contentType: contentType,
		plain:       plain,
		gz:          sync.OnceValue(func() []byte { return gzipBytes(plain, gzip.BestCompression) }),
	}
}

func (s *static) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	writeBody(w, r, s.contentType, s.plain, s.gz)
}
