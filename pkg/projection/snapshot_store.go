package projection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/stream"
)

// snapshots keeps the projector's view snapshots in a JetStream object
// store bucket: saved every interval once the view is ready and when the
// projector stops, loaded when a projector starts with an empty view.
//
// Each snapshot is stored under a name derived from the stream, the subject
// prefix and the schema, with the stream's creation time and the sequence it
// reflects as metadata. A snapshot of an earlier stream of the same name is
// ignored, as is one ahead of the stream: the view is then rebuilt by
// replaying the stream, as without snapshots. API replicas may all save: any
// snapshot is a consistent state of the view at its sequence, the newest
// write wins.
//
// The object store leaves chunks behind that no object refers to when two
// replicas save at once (each Put removes only the chunks of the object it
// replaced) or when a replica dies in the middle of a Put. After each save,
// a replica purges such chunks once they are older than orphanAge (see
// sweep), so the bucket holds about one snapshot per name, not a snapshot per
// collision.
type snapshots struct {
	bucket   string
	every    time.Duration
	name     string
	replicas int // of the bucket, when it is created

	mu      sync.Mutex
	obj     jetstream.ObjectStore
	created string // creation time of the stream being consumed
	saved   uint64 // sequence of the last snapshot saved
}

const (
	metaStreamCreated = "stream_created"
	metaSeq           = "seq"
)

// orphanAge is how long chunks no object refers to are left alone. A Put
// writes its chunks back to back and then the object's entry: chunks of a
// Put still in progress are seconds old, never minutes.
const orphanAge = 5 * time.Minute

// newSnapshots saves v every so often in bucket, which gets replicas when
// it is created, under a name of the stream, the subject prefix and v's
// schema.
func newSnapshots(bucket string, every time.Duration, replicas int, stream, prefix string, v *View) *snapshots {
	schema, _ := json.Marshal(v.header()) // format and schema, no state
	name := fmt.Sprintf("view.%s.%s.%08x", stream, prefix, crc32.ChecksumIEEE(schema))
	return &snapshots{bucket: bucket, every: every, name: name, replicas: replicas}
}

func (s *snapshots) store(ctx context.Context, js jetstream.JetStream) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.obj != nil {
		return s.obj, nil
	}
	// An existing bucket is used as it is: replicas or limits an operator
	// set stay across restarts.
	obj, err := stream.OpenOrCreate(ctx,
		func(ctx context.Context) (jetstream.ObjectStore, error) { return js.ObjectStore(ctx, s.bucket) },
		func(ctx context.Context) (jetstream.ObjectStore, error) {
			return js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
				Bucket:      s.bucket,
				Description: "reportes: snapshots of the dashboard view",
				Storage:     jetstream.FileStorage,
				Replicas:    s.replicas,
			})
		})
	if err != nil {
		return nil, fmt.Errorf("open snapshot bucket %s: %w", s.bucket, err)
	}
	s.obj = obj
	return obj, nil
}

func streamCreated(info *jetstream.StreamInfo) string {
	return info.Created.UTC().Format(time.RFC3339Nano)
}

// consuming records the stream the view is built from; snapshots are
// labelled with its creation time. The first stream seen is the one: the
// view's state came from it.
func (s *snapshots) consuming(info *jetstream.StreamInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.created == "" {
		s.created = streamCreated(info)
	}
}

// restore loads the latest usable snapshot into view, which is empty. It
// returns whether it did; why it did not is an error worth a log line, not a
// reason to stop (the stream has everything).
func (s *snapshots) restore(ctx context.Context, js jetstream.JetStream, info *jetstream.StreamInfo, view *View) (bool, error) {
	obj, err := s.store(ctx, js)
	if err != nil {
		return false, err
	}
	meta, err := obj.GetInfo(ctx, s.name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("snapshot %s: %w", s.name, err)
	}
	if got, want := meta.Metadata[metaStreamCreated], streamCreated(info); got != want {
		return false, fmt.Errorf("snapshot %s is of a stream created %s, this one was created %s", s.name, got, want)
	}
	if seq, _ := strconv.ParseUint(meta.Metadata[metaSeq], 10, 64); seq > info.State.LastSeq {
		return false, fmt.Errorf("snapshot %s is at sequence %d, past the stream's last %d", s.name, seq, info.State.LastSeq)
	}
	data, err := obj.GetBytes(ctx, s.name)
	if err != nil {
		return false, fmt.Errorf("read snapshot %s: %w", s.name, err)
	}
	seq, err := view.Restore(data)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	s.saved = seq
	s.mu.Unlock()
	return true, nil
}

// save writes a snapshot of view unless the last one saved is as recent.
// It returns the sequence and size saved (0, 0 when nothing was to save).
func (s *snapshots) save(ctx context.Context, js jetstream.JetStream, view *View) (uint64, int, error) {
	s.mu.Lock()
	created, saved := s.created, s.saved
	s.mu.Unlock()
	if created == "" || view.Seq() == saved {
		return 0, 0, nil
	}
	obj, err := s.store(ctx, js)
	if err != nil {
		return 0, 0, err
	}
	data, seq := view.Snapshot()
	_, err = obj.Put(ctx, jetstream.ObjectMeta{
		Name:        s.name,
		Description: "dashboard view at stream sequence " + strconv.FormatUint(seq, 10),
		Metadata:    map[string]string{metaStreamCreated: created, metaSeq: strconv.FormatUint(seq, 10)},
	}, bytes.NewReader(data))
	if err != nil {
		return 0, 0, fmt.Errorf("save snapshot %s: %w", s.name, err)
	}
	s.mu.Lock()
	s.saved = max(s.saved, seq)
	s.mu.Unlock()
	return seq, len(data), nil
}

// sweep purges the chunks in the bucket that no object refers to and whose
// newest chunk was stored before cutoff. It returns how many objects' worth
// of chunks it purged.
func (s *snapshots) sweep(ctx context.Context, js jetstream.JetStream, cutoff time.Time) (int, error) {
	obj, err := s.store(ctx, js)
	if err != nil {
		return 0, err
	}
	// Objects first, chunks second: a Put that completes in between shows
	// fresh chunks no listed object refers to, which the cutoff keeps.
	objects, err := obj.List(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		return 0, fmt.Errorf("list snapshots in %s: %w", s.bucket, err)
	}
	used := make(map[string]bool, len(objects))
	for _, o := range objects {
		used[o.NUID] = true
	}
	// The object store keeps bucket B in stream OBJ_B, chunks of object
	// NUID n under $O.B.C.n (NATS ADR-20).
	stream, err := js.Stream(ctx, "OBJ_"+s.bucket)
	if err != nil {
		return 0, fmt.Errorf("snapshot bucket %s: %w", s.bucket, err)
	}
	prefix := "$O." + s.bucket + ".C."
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return 0, fmt.Errorf("list chunks in %s: %w", s.bucket, err)
	}
	purged := 0
	for subj := range info.State.Subjects {
		if used[strings.TrimPrefix(subj, prefix)] {
			continue
		}
		last, err := stream.GetLastMsgForSubject(ctx, subj)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // purged since the listing
		}
		if err != nil {
			return purged, fmt.Errorf("newest chunk of %s: %w", subj, err)
		}
		if !last.Time.Before(cutoff) {
			continue // perhaps a Put in progress
		}
		if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err != nil {
			return purged, fmt.Errorf("purge %s: %w", subj, err)
		}
		purged++
	}
	return purged, nil
}
