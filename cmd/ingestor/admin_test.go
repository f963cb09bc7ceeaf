package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/devstack"
)

// streaming is a source that has finished its snapshot.
type streaming string

func (s streaming) Name() string    { return string(s) }
func (s streaming) Streaming() bool { return true }

// TestReadyzNamesNATS: with NATS unreachable, /readyz answers 503 naming
// NATS's redacted URL, why it cannot be reached and since when; once NATS
// is up it is ready.
func TestReadyzNamesNATS(t *testing.T) {
	port, err := devstack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("nats://reportes:s3cret@127.0.0.1:%d", port)
	cfg := config.Config{NatsURL: url}
	reach := config.NewReach(url)
	nc, err := cfg.ConnectNATS("reportes-ingestor-test", slog.New(slog.DiscardHandler), config.ReportTo(reach))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	srv := httptest.NewServer(adminServer(reach, "", "test", nil, streaming("postgres")).Handler)
	t.Cleanup(srv.Close)

	want := fmt.Sprintf("cannot reach NATS at nats://reportes:xxxxx@127.0.0.1:%d: connection refused", port)
	var body struct {
		Status, Error string
		Since         time.Time
		Seconds       int `json:"for_seconds"`
	}
	devstack.Eventually(t, 20*time.Second, func() (bool, string) {
		code := readyz(t, srv.URL, &body)
		return code == http.StatusServiceUnavailable && body.Error == want,
			fmt.Sprintf("/readyz %d %+v, want 503 with %q", code, body, want)
	})
	if body.Since.IsZero() || time.Since(body.Since) > time.Minute || body.Seconds < 0 {
		t.Errorf("since %s (%d s), want the start", body.Since, body.Seconds)
	}

	nats, err := devstack.StartNATS(t.TempDir(), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nats.Stop)
	devstack.Eventually(t, 20*time.Second, func() (bool, string) {
		code := readyz(t, srv.URL, &body)
		return code == http.StatusOK && body.Status == "ready", fmt.Sprintf("/readyz %d %+v, want 200 ready", code, body)
	})
}

func readyz(t *testing.T, url string, body any) int {
	t.Helper()
	resp, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}
