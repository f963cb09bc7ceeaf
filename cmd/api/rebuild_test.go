package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/reportes/reportes/pkg/projection"
)

// TestRebuildArguments: bad arguments are refused with exit code 2 before
// anything is asked of the API.
func TestRebuildArguments(t *testing.T) {
	for _, args := range [][]string{
		{"--from-seq", "1", "--from-time", "2026-11-27T23:00:00Z"},
		{"--from-seq", "uno"},
		{"now"},
		{"--desde", "1"},
	} {
		var out, errOut bytes.Buffer
		if code := commandLine(append([]string{"rebuild"}, args...), &out, &errOut); code != 2 || errOut.Len() == 0 {
			t.Errorf("api rebuild %v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}

// TestRebuildUnreachable: with no API at the URL, api rebuild says so and
// exits 1.
func TestRebuildUnreachable(t *testing.T) {
	var out, errOut bytes.Buffer
	code := commandLine([]string{"rebuild", "--url", "http://127.0.0.1:1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "cannot reach the API at http://127.0.0.1:1") {
		t.Errorf("exit %d, stderr %q", code, errOut.String())
	}
}

func TestProgressLines(t *testing.T) {
	eta := 3.4
	start := time.Now()
	end := start.Add(8100 * time.Millisecond)
	for _, tt := range []struct {
		line, want string
	}{
		{progressLine(projection.RebuildStatus{ID: 1, State: "replaying", Base: "stream", Applied: 1234567, Total: 2000000, Rate: 250000, ETASeconds: &eta}),
			"rebuild 1 replaying from the stream's start: 61.7% (1234567 of 2000000 events), 250000 events/s, about 3s left"},
		{progressLine(projection.RebuildStatus{ID: 2, State: "swapping", Base: "snapshot", BaseSeq: 900, Applied: 10, Total: 10, Rate: 50}),
			"rebuild 2 swapping from the snapshot at seq 900: 100.0% (10 of 10 events), 50 events/s"},
		{swappedLine(projection.RebuildStatus{ID: 3, Seq: 2000123, ServedSeq: 2000100, Applied: 2000000, Started: start, Finished: &end}),
			"rebuild 3 swapped: the new view is served at seq 2000123 (the old one stopped at 2000100); 2000000 events applied in 8.1s"},
	} {
		if tt.line != tt.want {
			t.Errorf("got  %q\nwant %q", tt.line, tt.want)
		}
	}
}
