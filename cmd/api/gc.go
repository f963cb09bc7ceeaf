package main

import (
	"runtime/debug"
	"sync"
)

// rebuildGC runs the garbage collector at percent (REBUILD_GC_PERCENT)
// while the projector rebuilds the view: a rebuild allocates per event but
// keeps little, so collecting less often saves CPU for decoding. Once the
// view is ready it restores the previous percent and gives the memory back
// to the OS.
type rebuildGC struct {
	percent int

	mu     sync.Mutex
	prev   int
	raised bool
}

// start is the projector's rebuild start hook.
func (g *rebuildGC) start() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.prev, g.raised = debug.SetGCPercent(g.percent), true
}

// ready is the projector's hook for a view that caught up.
func (g *rebuildGC) ready() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.raised {
		debug.SetGCPercent(g.prev)
		g.raised = false
	}
	// Rebuilding churns through memory far beyond what the view keeps;
	// give it back now rather than hold the high-water mark for ever.
	go debug.FreeOSMemory()
}
