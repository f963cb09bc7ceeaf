package projection

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// chunkSubjects is what the snapshot bucket's stream holds under its chunk
// subjects, by subject.
func (h *snapshotHarness) chunkSubjects(bucket string) map[string]uint64 {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter("$O."+bucket+".C.>"))
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Subjects
}

// replica is what one API replica keeps of snapshots: its own store handle
// over the shared bucket, and a view of the whole stream.
func (h *snapshotHarness) replica(bucket string) (*snapshots, *View) {
	h.t.Helper()
	v, _ := NewView(DefaultSchema())
	replayAll(h.t, h, v)
	s := newSnapshots(bucket, time.Hour, 1, h.stream, "snap.cdc", v)
	st, _ := h.js.Stream(context.Background(), h.stream)
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	s.consuming(info)
	return s, v
}

// TestSnapshotSweep: chunks no snapshot refers to, left by replicas that
// saved at the same time or died in the middle of a save, are purged once
// older than the cutoff, and the snapshot that is referred to still
// restores.
func TestSnapshotSweep(t *testing.T) {
	h := newSnapshotHarness(t)
	ctx := context.Background()
	const bucket = "sweep"
	a, va := h.replica(bucket)
	b, vb := h.replica(bucket)
	for round := range 8 {
		h.publish(20)
		replayAll(t, h, va)
		replayAll(t, h, vb)
		var wg sync.WaitGroup
		for _, r := range []struct {
			s *snapshots
			v *View
		}{{a, va}, {b, vb}} {
			wg.Go(func() {
				if _, _, err := r.s.save(ctx, h.js, r.v); err != nil {
					t.Errorf("round %d: %v", round, err)
				}
			})
		}
		wg.Wait()
	}
	// A replica killed in the middle of a Put leaves chunks of an object
	// that was never written.
	if _, err := h.js.Publish(ctx, "$O."+bucket+".C.killedmidput", make([]byte, 1024)); err != nil {
		t.Fatal(err)
	}
	before := h.chunkSubjects(bucket)
	t.Logf("chunk subjects before the sweep: %d", len(before))
	if _, ok := before["$O."+bucket+".C.killedmidput"]; !ok || len(before) < 2 {
		t.Fatalf("chunk subjects before the sweep: %v", before)
	}

	// Recent chunks may belong to a Put in progress: kept.
	if n, err := a.sweep(ctx, h.js, time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep with an hour's grace purged %d (err %v), want 0", n, err)
	}
	if got := h.chunkSubjects(bucket); len(got) != len(before) {
		t.Fatalf("chunk subjects after a sweep that purged nothing: %d, want %d", len(got), len(before))
	}

	n, err := b.sweep(ctx, h.js, time.Now().Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if n != len(before)-1 {
		t.Fatalf("purged %d objects' chunks, want %d of %v", n, len(before)-1, before)
	}
	obj, _ := h.js.ObjectStore(ctx, bucket)
	info, err := obj.GetInfo(ctx, a.name)
	if err != nil {
		t.Fatal(err)
	}
	if got := h.chunkSubjects(bucket); len(got) != 1 || got["$O."+bucket+".C."+info.NUID] != uint64(info.Chunks) {
		t.Fatalf("chunk subjects after the sweep: %v, want the %d chunks of %s", got, info.Chunks, info.NUID)
	}
	c, restored := h.replica(bucket)
	fresh, _ := NewView(DefaultSchema())
	st, _ := h.js.Stream(ctx, h.stream)
	sinfo, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := c.restore(ctx, h.js, sinfo, fresh); !ok || err != nil {
		t.Fatalf("restore after the sweep: %v, %v", ok, err)
	}
	if x, y := fmt.Sprint(state(fresh)), fmt.Sprint(state(restored)); x != y {
		t.Fatalf("restored view differs from the stream's:\n%s\n%s", x, y)
	}
}

// TestSnapshotBucketKeptAsTheOperatorMadeIt: a snapshot bucket that exists
// is used as it is, not reconfigured.
func TestSnapshotBucketKeptAsTheOperatorMadeIt(t *testing.T) {
	h := newSnapshotHarness(t)
	ctx := context.Background()
	if _, err := h.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket: "ops", Description: "made by hand", MaxBytes: 256 << 20, Storage: jetstream.FileStorage, Compression: true,
	}); err != nil {
		t.Fatal(err)
	}
	s, _ := h.replica("ops")
	obj, err := s.store(ctx, h.js)
	if err != nil {
		t.Fatal(err)
	}
	st, err := obj.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Description() != "made by hand" || !st.IsCompressed() {
		t.Fatalf("bucket after opening: description %q, compressed %v; want the operator's", st.Description(), st.IsCompressed())
	}
	info, err := h.js.Stream(ctx, "OBJ_ops")
	if err != nil {
		t.Fatal(err)
	}
	if got := info.CachedInfo().Config.MaxBytes; got != 256<<20 {
		t.Fatalf("bucket's max bytes %d after opening, want the operator's %d", got, 256<<20)
	}
}
