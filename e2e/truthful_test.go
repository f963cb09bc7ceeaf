package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
	"github.com/reportes/reportes/pkg/projection"
)

// answer is one response of the API.
type answer struct {
	code   int
	header http.Header
	body   []byte
}

func (e *env) get(path string) (answer, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", e.apiPort, path))
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return answer{code: resp.StatusCode, header: resp.Header, body: body}, err
}

// waitFor polls path until ok accepts its answer.
func (e *env) waitFor(path string, timeout time.Duration, ok func(answer) string) answer {
	e.t.Helper()
	var a answer
	devstack.Eventually(e.t, timeout, func() (bool, string) {
		var err error
		if a, err = e.get(path); err != nil {
			return false, err.Error()
		}
		if why := ok(a); why != "" {
			return false, fmt.Sprintf("GET %s = %d %s %s: %s", path, a.code, a.header, a.body, why)
		}
		return true, ""
	})
	return a
}

// staleFields is what a stale dashboard adds to frescura.
type staleFields struct {
	Conectado        *bool     `json:"conectado"`
	SinConexionDesde time.Time `json:"sin_conexion_desde"`
	Error            string    `json:"error"`
}

func frescura(a answer) staleFields {
	var d struct {
		Frescura staleFields `json:"frescura"`
	}
	_ = json.Unmarshal(a.body, &d)
	return d.Frescura
}

// TestTruthful: the API never answers a dashboard of zeros it has not
// read, and says when the one it serves is stale.
func TestTruthful(t *testing.T) {
	e := newEnv(t)
	w := newWorkload(e, 7)
	for range 6 {
		w.hire(t)
	}
	w.orders(t, 40)
	nats := e.stack.NATS
	unreachable := "cannot reach NATS at " + nats.URL() + ": connection refused"
	nats.Stop()
	t.Cleanup(func() {
		if !nats.Server.Running() {
			_ = nats.Restart() // the next tests share it
		}
	})

	// Never ready: 503, Retry-After, and why, on both routes.
	e.start("api")
	e.waitFor("/reportes/dashboard", 30*time.Second, func(a answer) string {
		var er map[string]string
		switch {
		case a.code != http.StatusServiceUnavailable:
			return "want 503"
		case a.header.Get("Retry-After") == "":
			return "want Retry-After"
		case json.Unmarshal(a.body, &er) != nil || er["error"] != unreachable:
			return fmt.Sprintf("want the JSON error %q", unreachable)
		}
		return ""
	})
	e.waitFor("/readyz", 10*time.Second, func(a answer) string {
		return readyzSays(a, http.StatusServiceUnavailable, "not ready", unreachable)
	})

	if err := nats.Restart(); err != nil {
		t.Fatal(err)
	}
	e.start("ingestor")
	want := e.converges(60 * time.Second)
	e.waitFor("/reportes/dashboard", 10*time.Second, notStale)
	e.waitFor("/readyz", 10*time.Second, func(a answer) string { return readyzSays(a, http.StatusOK, "ready", "") })

	// Ready once, then NATS goes away: the last view, marked stale.
	nats.Stop()
	stale := e.waitFor("/reportes/dashboard", 30*time.Second, func(a answer) string {
		f := frescura(a)
		switch {
		case a.code != http.StatusOK:
			return "want 200"
		case a.header.Get("X-Reportes-Stale") == "":
			return "want X-Reportes-Stale"
		case f.Conectado == nil || *f.Conectado || f.SinConexionDesde.IsZero() || f.Error != unreachable:
			return "want frescura conectado false, sin_conexion_desde and the error"
		}
		return ""
	})
	if secs, err := strconv.Atoi(stale.header.Get("X-Reportes-Stale")); err != nil || secs < 0 {
		t.Errorf("X-Reportes-Stale = %q, want whole seconds", stale.header.Get("X-Reportes-Stale"))
	}
	var got projection.Dashboard
	if err := json.Unmarshal(stale.body, &got); err != nil {
		t.Fatal(err)
	}
	got.Frescura = projection.Freshness{}
	if brief(got) != brief(want) {
		t.Errorf("the stale dashboard is not the last view:\n got %s\nwant %s", brief(got), brief(want))
	}
	e.waitFor("/readyz", 10*time.Second, func(a answer) string { return readyzSays(a, http.StatusOK, "stale", unreachable) })

	// NATS back: the marks go away and the view follows the sources again.
	if err := nats.Restart(); err != nil {
		t.Fatal(err)
	}
	w.orders(t, 10)
	e.converges(60 * time.Second)
	e.waitFor("/reportes/dashboard", 30*time.Second, notStale)
	e.waitFor("/readyz", 10*time.Second, func(a answer) string { return readyzSays(a, http.StatusOK, "ready", "") })

	e.mu.Lock()
	logged := strings.Count(e.procs["api"].out.String(), "the event stream cannot be read")
	e.mu.Unlock()
	// It checks every second: the first outage, long enough, is logged;
	// the second may end before a check. Never once per request or retry.
	if logged < 1 || logged > 4 {
		t.Errorf("the api logged the NATS problem %d times over two outages, want once per outage and change", logged)
	}
}

func notStale(a answer) string {
	switch {
	case a.code != http.StatusOK:
		return "want 200"
	case a.header.Get("X-Reportes-Stale") != "":
		return "want no X-Reportes-Stale"
	case strings.Contains(string(a.body), `"conectado"`):
		return "want no stale fields"
	}
	return ""
}

func readyzSays(a answer, code int, status, err string) string {
	var r struct {
		Status     string     `json:"status"`
		Error      string     `json:"error"`
		Since      *time.Time `json:"since"`
		ForSeconds *int64     `json:"for_seconds"`
	}
	if a.code != code || json.Unmarshal(a.body, &r) != nil || r.Status != status || r.Error != err {
		return fmt.Sprintf("want %d %s %q", code, status, err)
	}
	if (err != "") != (r.Since != nil && r.ForSeconds != nil) {
		return "want since and for_seconds exactly when there is an error"
	}
	return ""
}
