package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/projection"
)

// fakeRebuilder answers as projection.Serving does, with err when set.
type fakeRebuilder struct {
	err  error
	from projection.RebuildFrom
	last *projection.RebuildStatus
}

func (f *fakeRebuilder) Rebuild(_ context.Context, from projection.RebuildFrom) (projection.RebuildStatus, error) {
	if f.err != nil {
		return projection.RebuildStatus{}, f.err
	}
	f.from = from
	f.last = &projection.RebuildStatus{ID: 1, State: projection.RebuildReplaying, FromSeq: from.Seq, Started: time.Now()}
	return *f.last, nil
}

func (f *fakeRebuilder) LastRebuild() (projection.RebuildStatus, bool) {
	if f.last == nil {
		return projection.RebuildStatus{}, false
	}
	return *f.last, true
}

// TestRebuildRoute: the route needs a token (403 without API_TOKEN, 401
// with a wrong one), reads from_seq or from_time, and answers each error
// of the rebuilder with its own status.
func TestRebuildRoute(t *testing.T) {
	wrapped := func(err error) error { return fmt.Errorf("start: %w", err) }
	tests := []struct {
		name, method, query, token, auth string
		err                              error
		code                             int
		contains                         string
	}{
		{"no API_TOKEN", "POST", "", "", "", nil, 403, "API_TOKEN is unset"},
		{"no API_TOKEN, status", "GET", "", "", "", nil, 403, "API_TOKEN is unset"},
		{"wrong token", "POST", "", "t", "Bearer x", nil, 401, "bearer token"},
		{"no rebuild yet", "GET", "", "t", "Bearer t", nil, 404, "no rebuild since"},
		{"started", "POST", "?from_seq=1", "t", "Bearer t", nil, 202, `"state":"replaying"`},
		{"by time", "POST", "?from_time=2026-11-27T23:00:00Z", "t", "Bearer t", nil, 202, `"id":1`},
		{"bad seq", "POST", "?from_seq=0", "t", "Bearer t", nil, 400, "from_seq"},
		{"bad time", "POST", "?from_time=ayer", "t", "Bearer t", nil, 400, "RFC 3339"},
		{"both", "POST", "?from_seq=2&from_time=2026-11-27T23:00:00Z", "t", "Bearer t", nil, 400, "not both"},
		{"unknown parameter", "POST", "?desde=1", "t", "Bearer t", nil, 400, "unknown query parameter"},
		{"running", "POST", "", "t", "Bearer t", projection.ErrRebuildRunning, 409, "already running"},
		{"not ready", "POST", "", "t", "Bearer t", wrapped(projection.ErrNotReady), 409, "caught up"},
		{"past the stream", "POST", "?from_seq=99", "t", "Bearer t", wrapped(projection.ErrBadStart), 400, "no such start"},
		{"lacks history", "POST", "?from_seq=1", "t", "Bearer t", wrapped(projection.ErrLacksHistory), 422, "no longer holds"},
		{"stream unreadable", "POST", "", "t", "Bearer t", fmt.Errorf("find stream S: nats: timeout"), 503, "timeout"},
		{"wrong method", "DELETE", "", "t", "Bearer t", nil, 405, "not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rb := &fakeRebuilder{err: tt.err}
			h := New(&fake{ready: true}, WithBearerToken(tt.token), WithRebuild(rb))
			req := httptest.NewRequest(tt.method, RebuildPath+tt.query, nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.code || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("%s %s = %d %s, want %d containing %q", tt.method, tt.query, rec.Code, rec.Body, tt.code, tt.contains)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", rec.Body)
			}
			if rec.Code == http.StatusAccepted && rec.Header().Get("Location") != RebuildPath {
				t.Errorf("202 without Location %s", RebuildPath)
			}
		})
	}
}

// TestRebuildStatusMatchesSchema: the status the API answers is the
// documented Rebuild.
func TestRebuildStatusMatchesSchema(t *testing.T) {
	schema := loadSpec(t).Components.Schemas["Rebuild"].Value
	eta, fin := 1.5, time.Now()
	for _, st := range []projection.RebuildStatus{
		{ID: 1, State: projection.RebuildReplaying, Started: time.Now()},
		{ID: 2, State: projection.RebuildSwapped, Base: "snapshot", BaseSeq: 10, FromSeq: 12, Seq: 40, Target: 30, Applied: 30, Total: 30,
			Rate: 1e5, ETASeconds: &eta, ServedSeq: 39, Started: time.Now(), Finished: &fin},
		{ID: 3, State: projection.RebuildFailed, Started: time.Now(), Finished: &fin, Error: "the API is stopping"},
	} {
		body, _ := json.Marshal(st)
		var v any
		_ = json.Unmarshal(body, &v)
		if err := schema.VisitJSON(v); err != nil {
			t.Errorf("status %s does not match its schema: %v", body, err)
		}
	}
}
