package projection

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/reportes/reportes/internal/devstack"
)

// TestRebuildHooks: start is called once before a projector replays the
// stream and ready once when it caught up, after start; a projector whose
// restored snapshot already holds the whole stream calls only ready.
func TestRebuildHooks(t *testing.T) {
	h := newSnapshotHarness(t)
	h.publish(100)
	var mu sync.Mutex
	var calls []string
	record := func(name string) func() {
		return func() {
			mu.Lock()
			defer mu.Unlock()
			calls = append(calls, name)
		}
	}
	waitCalls := func(want ...string) {
		t.Helper()
		devstack.Eventually(t, 10*time.Second, func() (bool, string) {
			mu.Lock()
			defer mu.Unlock()
			return slices.Equal(calls, want), fmt.Sprintf("hooks called %v, want %v", calls, want)
		})
	}

	p, stop := h.run(WithRebuildHooks(record("start"), record("ready")))
	waitCalls("start", "ready")
	h.publish(10)
	h.waitApplied(p)
	stop() // saves the snapshot the next projector starts from
	waitCalls("start", "ready")

	mu.Lock()
	calls = nil
	mu.Unlock()
	_, stop = h.run(WithRebuildHooks(record("start"), record("ready")))
	defer stop()
	waitCalls("ready")
}
