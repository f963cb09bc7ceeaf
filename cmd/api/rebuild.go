package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/reportes/reportes/internal/config"
	"github.com/reportes/reportes/internal/httpapi"
	"github.com/reportes/reportes/pkg/projection"
)

// rebuilder is the served view's rebuilds as the HTTP API starts and
// reports them.
type rebuilder struct{ s *projection.Serving }

func (r rebuilder) Rebuild(ctx context.Context, from projection.RebuildFrom) (projection.RebuildStatus, error) {
	rb, err := r.s.Rebuild(ctx, from)
	if err != nil {
		return projection.RebuildStatus{}, err
	}
	return rb.Status(), nil
}

func (r rebuilder) LastRebuild() (projection.RebuildStatus, bool) {
	rb := r.s.LastRebuild()
	if rb == nil {
		return projection.RebuildStatus{}, false
	}
	return rb.Status(), true
}

// rebuildClient is `api rebuild`: it asks the running API for a rebuild
// and follows it until the new view is served or the rebuild failed.
type rebuildClient struct {
	base  string // the API's URL
	token string
	http  *http.Client
	out   io.Writer
	tty   bool          // out is a terminal: one line rewritten in place
	every time.Duration // between plain progress lines
}

// rebuildCommand runs `api rebuild [flags]` and returns the exit code: 0
// when the new view is served, 1 when the rebuild failed or could not be
// followed, 2 for bad arguments.
func rebuildCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("api rebuild", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fromSeq := fs.Uint64("from-seq", 0, "apply again every event from this stream sequence on (1: a full replay)")
	fromTime := fs.String("from-time", "", "apply again every event from the first stored at or after this RFC 3339 time")
	apiURL := fs.String("url", "", "URL of the running API (default: API_URL, else http://127.0.0.1:PORT)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*fromSeq != 0 && *fromTime != "") {
		fmt.Fprintln(stderr, "api rebuild: give --from-seq or --from-time, not both, and no other argument")
		return 2
	}
	cfg, err := config.Load()
	if err != nil {
		fmt.Fprintln(stderr, "api rebuild:", err)
		return 2
	}
	c := newRebuildClient(cfg, *apiURL, stdout)
	q := url.Values{}
	if *fromSeq != 0 {
		q.Set("from_seq", strconv.FormatUint(*fromSeq, 10))
	}
	if *fromTime != "" {
		q.Set("from_time", *fromTime)
	}
	ctx, stop := signalContext()
	defer stop()
	if err := c.run(ctx, q); err != nil {
		fmt.Fprintln(stderr, "api rebuild:", err)
		return 1
	}
	return 0
}

// signalContext ends on Ctrl-C or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func newRebuildClient(cfg config.Config, apiURL string, stdout io.Writer) *rebuildClient {
	base := apiURL
	if base == "" {
		base = cfg.APIURL
	}
	if base == "" {
		base = "http://127.0.0.1:" + strconv.Itoa(cfg.Port)
	}
	return &rebuildClient{
		base: strings.TrimRight(base, "/"), token: cfg.APIToken, http: &http.Client{Timeout: 30 * time.Second},
		out: stdout, tty: config.IsTerminal(stdout), every: 2 * time.Second,
	}
}

// run starts the rebuild and follows it.
func (c *rebuildClient) run(ctx context.Context, q url.Values) error {
	var st projection.RebuildStatus
	if err := c.call(ctx, http.MethodPost, q, http.StatusAccepted, &st); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	return c.follow(ctx, st.ID)
}

// follow polls the rebuild id until it is swapped (nil) or failed.
func (c *rebuildClient) follow(ctx context.Context, id uint64) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var printed time.Time
	for {
		var st projection.RebuildStatus
		if err := c.call(ctx, http.MethodGet, nil, http.StatusOK, &st); err != nil {
			c.endLine()
			return fmt.Errorf("follow rebuild %d: %w (it may still run: GET %s)", id, err, httpapi.RebuildPath)
		}
		if st.ID != id {
			c.endLine()
			return fmt.Errorf("rebuild %d is no longer the API's (it restarted?); its last is %d, %s", id, st.ID, st.State)
		}
		switch st.State {
		case projection.RebuildSwapped:
			c.endLine()
			fmt.Fprintln(c.out, swappedLine(st))
			return nil
		case projection.RebuildFailed:
			c.endLine()
			return fmt.Errorf("rebuild %d failed: %s", id, st.Error)
		}
		if c.tty {
			fmt.Fprint(c.out, "\r\033[K"+progressLine(st))
		} else if time.Since(printed) >= c.every {
			fmt.Fprintln(c.out, progressLine(st))
			printed = time.Now()
		}
		select {
		case <-ctx.Done():
			c.endLine()
			return fmt.Errorf("interrupted; rebuild %d goes on in the API (GET %s)", id, httpapi.RebuildPath)
		case <-tick.C:
		}
	}
}

func (c *rebuildClient) endLine() {
	if c.tty {
		fmt.Fprintln(c.out)
	}
}

// progressLine says how far a rebuild got, e.g. "rebuild 1 replaying from
// the stream's start: 61.7% (1234567 of 2000000 events), 250000 events/s,
// about 3s left".
func progressLine(st projection.RebuildStatus) string {
	if st.Base == "" {
		return fmt.Sprintf("rebuild %d starting: choosing its base (the latest snapshot or the stream's start)", st.ID)
	}
	from := "the stream's start"
	if st.Base == "snapshot" {
		from = "the snapshot at seq " + strconv.FormatUint(st.BaseSeq, 10)
	}
	line := fmt.Sprintf("rebuild %d %s from %s: ", st.ID, st.State, from)
	if st.Total > 0 {
		line += fmt.Sprintf("%.1f%% ", 100*float64(st.Applied)/float64(st.Total))
	}
	line += fmt.Sprintf("(%d of %d events), %.0f events/s", st.Applied, st.Total, st.Rate)
	if st.ETASeconds != nil {
		line += ", about " + (time.Duration(*st.ETASeconds * float64(time.Second))).Round(time.Second).String() + " left"
	}
	return line
}

func swappedLine(st projection.RebuildStatus) string {
	took := ""
	if st.Finished != nil {
		took = " in " + st.Finished.Sub(st.Started).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("rebuild %d swapped: the new view is served at seq %d (the old one stopped at %d); %d events applied%s",
		st.ID, st.Seq, st.ServedSeq, st.Applied, took)
}

// call sends method to the rebuild route and decodes the answer into out
// when its status is want; otherwise the error says the status and why.
func (c *rebuildClient) call(ctx context.Context, method string, q url.Values, want int, out any) error {
	u := c.base + httpapi.RebuildPath
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return fmt.Errorf("API_URL or --url %q: %w", c.base, err)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach the API at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != want {
		var e struct{ Error string }
		if json.Unmarshal(body, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(body))
		}
		return errors.New(resp.Status + ": " + e.Error)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	return nil
}
