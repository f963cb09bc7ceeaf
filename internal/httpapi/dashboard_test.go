package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

// healthy is a Dashboard that reports its Health.
type healthy struct {
	mu     sync.Mutex
	body   []byte
	health Health
}

func (h *healthy) JSON() []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.body
}

func (h *healthy) Ready() bool { return h.Health().Ready && h.Health().Err == nil }

func (h *healthy) Health() Health {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.health
}

func (h *healthy) set(hl Health) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.health = hl
}

// sampleView is a view with two employees and an order.
func sampleView(t testing.TB) *projection.View {
	t.Helper()
	v, err := projection.NewView(projection.DefaultSchema())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	evs := []cdc.Event{
		{ID: "1", Source: "postgres", Collection: "public.empleados", Op: cdc.OpInsert, Key: "S-01", CommitTime: now, After: json.RawMessage(`{"codigo":"S-01","rol":"operario","activo":true}`)},
		{ID: "2", Source: "postgres", Collection: "public.empleados", Op: cdc.OpInsert, Key: "S-02", CommitTime: now, After: json.RawMessage(`{"codigo":"S-02","rol":null,"activo":false}`)},
		{ID: "3", Source: "mongo", Collection: "inventory_db.orders", Op: cdc.OpInsert, Key: "a", CommitTime: now, After: json.RawMessage(`{"vendedor":"S-01"}`)},
	}
	for i := range evs {
		if _, err := v.Apply(&evs[i], uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	return v
}

func get(h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

var errNATS = errors.New("cannot reach NATS at nats://127.0.0.1:4222: connection refused")

// TestDashboardNotReady: before the view caught up once, the dashboard
// is a 503 naming why, never a 200 of zeros.
func TestDashboardNotReady(t *testing.T) {
	since := time.Now().Add(-3 * time.Second)
	for _, tt := range []struct {
		name   string
		health Health
		retry  string
		want   string
	}{
		{"catching up", Health{Seq: 1200}, "1", "the view is catching up with the event stream (at seq 1200)"},
		{"NATS unreachable", Health{Err: errNATS, Since: since}, "5", errNATS.Error()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v, _ := projection.NewView(projection.DefaultSchema())
			h := New(&healthy{body: v.JSON(), health: tt.health})
			rec := get(h, "GET", "/reportes/dashboard")
			var e map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if rec.Code != http.StatusServiceUnavailable || e["error"] != tt.want {
				t.Errorf("got %d %q, want 503 with error %q", rec.Code, rec.Body, tt.want)
			}
			if got := rec.Header().Get("Retry-After"); got != tt.retry {
				t.Errorf("Retry-After = %q, want %q", got, tt.retry)
			}
		})
	}
}

// TestDashboardStale: once ready, a view whose stream cannot be read is
// served with 200, the stale header and the frescura fields; the fields
// go away when the stream can be read again.
func TestDashboardStale(t *testing.T) {
	v := sampleView(t)
	since := time.Now().Add(-90 * time.Second).Truncate(time.Millisecond)
	d := &healthy{body: v.JSON(), health: Health{Ready: true, Err: errNATS, Since: since}}
	h := New(d)

	rec := get(h, "GET", "/reportes/dashboard")
	if rec.Code != http.StatusOK {
		t.Fatalf("stale dashboard = %d %q", rec.Code, rec.Body)
	}
	if secs, err := strconv.Atoi(rec.Header().Get(StaleHeader)); err != nil || secs < 90 || secs > 120 {
		t.Errorf("%s = %q, want the seconds since %s", StaleHeader, rec.Header().Get(StaleHeader), since)
	}
	if !strings.HasPrefix(rec.Body.String(), `{"titulo":`) || !strings.HasSuffix(rec.Body.String(), "}\n") {
		t.Errorf("stale body lost the field order or its newline: %q", rec.Body)
	}
	var got struct {
		projection.Dashboard
		Frescura map[string]any `json:"frescura"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := v.Dashboard()
	if brief(got.Dashboard) != brief(projection.Dashboard{Titulo: want.Titulo, MetricasGlobales: want.MetricasGlobales, DetallePorVendedor: want.DetallePorVendedor}) {
		t.Errorf("stale dashboard %s differs from the view %s", rec.Body, v.JSON())
	}
	f := got.Frescura
	if f["conectado"] != false || f["sin_conexion_desde"] != since.UTC().Format(time.RFC3339Nano) || f["error"] != errNATS.Error() || f["secuencia"] != float64(3) {
		t.Errorf("frescura = %v, want conectado false since %s and the error", f, since.UTC().Format(time.RFC3339Nano))
	}
	validateDashboard(t, rec.Body.Bytes())

	d.set(Health{Ready: true})
	rec = get(h, "GET", "/reportes/dashboard")
	if rec.Code != http.StatusOK || rec.Body.String() != string(v.JSON()) || rec.Header().Get(StaleHeader) != "" {
		t.Errorf("connected again: %d %s %q, want the view's body without %s", rec.Code, rec.Header(), rec.Body, StaleHeader)
	}
}

func brief(d projection.Dashboard) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// TestStaleRenderingIsCached: an outage re-encodes once per view change or
// reason, not per request.
func TestStaleRenderingIsCached(t *testing.T) {
	v := sampleView(t)
	var c staleCache
	h := Health{Ready: true, Err: errNATS, Since: time.Now()}
	a, b := c.render(v.JSON(), h), c.render(v.JSON(), h)
	if first(a) != first(b) {
		t.Error("the same view and reason were rendered twice")
	}
	h.Err = errors.New("stream S not found")
	if d := c.render(v.JSON(), h); first(d) == first(a) || !strings.Contains(string(d), "stream S not found") {
		t.Errorf("a new reason kept the old rendering: %s", d)
	}
	if body := []byte(`not json`); string(c.render(body, h)) != "not json" {
		t.Error("a body that is not a dashboard must be served as it is")
	}
}

func TestReadyz(t *testing.T) {
	since := time.Now().Add(-42 * time.Second)
	for _, tt := range []struct {
		name   string
		health Health
		code   int
		status string
		err    string
		since  bool
	}{
		{"catching up", Health{Seq: 7}, 503, "not ready", "the view is catching up with the event stream (at seq 7)", false},
		{"NATS unreachable before ready", Health{Err: errNATS, Since: since}, 503, "not ready", errNATS.Error(), true},
		{"NATS unreachable after ready", Health{Ready: true, Err: errNATS, Since: since}, 200, "stale", errNATS.Error(), true},
		{"ready", Health{Ready: true}, 200, "ready", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := get(New(&healthy{health: tt.health}), "GET", "/readyz")
			var got struct {
				Status     string     `json:"status"`
				Error      string     `json:"error"`
				Since      *time.Time `json:"since"`
				ForSeconds *int64     `json:"for_seconds"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			if rec.Code != tt.code || got.Status != tt.status || got.Error != tt.err {
				t.Errorf("got %d %s, want %d %s %q", rec.Code, rec.Body, tt.code, tt.status, tt.err)
			}
			if tt.since != (got.Since != nil) || tt.since && (!got.Since.Equal(since) || *got.ForSeconds < 42) {
				t.Errorf("since/for_seconds = %s, want them %v", rec.Body, tt.since)
			}
		})
	}
}
