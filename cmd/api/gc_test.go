package main

import (
	"runtime/debug"
	"testing"
)

// TestRebuildGC: the GC runs at the rebuild's percent from start to ready,
// and at the previous one after; ready without a start leaves it alone.
func TestRebuildGC(t *testing.T) {
	const before = 123
	defer debug.SetGCPercent(debug.SetGCPercent(before))

	g := &rebuildGC{percent: 400}
	g.start()
	if got := debug.SetGCPercent(400); got != 400 {
		t.Fatalf("GC percent during the rebuild = %d, want 400", got)
	}
	g.ready()
	if got := debug.SetGCPercent(before); got != before {
		t.Fatalf("GC percent once ready = %d, want %d", got, before)
	}

	(&rebuildGC{percent: 400}).ready()
	if got := debug.SetGCPercent(before); got != before {
		t.Fatalf("GC percent after ready without a rebuild = %d, want %d", got, before)
	}
}
