package cdc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// A backfill reads a table or collection again, in chunks in key order,
// while the source keeps streaming its changes; every snapshot a source
// takes (the first one, and after a lost position) is one too, so there is
// one way to read a source's data. It follows DBLog's watermarks:
//
//  1. The Backfiller opens a window: from now on the capture loop reports
//     every key it streams (Observe).
//  2. It reads the next chunk (ChunkReader.ReadChunk) and writes a
//     watermark into the source's own log (a logical decoding message, a
//     document in a watermark collection).
//  3. When the capture loop reads the watermark (Watermark), it publishes
//     the chunk's rows, except those whose key it streamed while the
//     window was open: the change it streamed carries them as new as or
//     newer than the chunk read, and publishing the chunk's copy after it
//     would undo it. The rows carry the watermark's position, so any later
//     change supersedes them, and no earlier one does.
//
// Streaming never stops: a chunk costs the loop one publish per row, at
// the watermark. A full backfill (no filter) is a snapshot bracket: a
// snapshot_begin marker at a first watermark, the chunks, a snapshot_end
// marker, so consumers drop the keys they hold that neither a chunk nor a
// change mentioned since the beginning (docs/events.md). A filtered one
// publishes rows only and deletes nothing.
//
// Requests and progress live in the checkpoint bucket under
// BackfillKey(source, id): anyone with access to the bucket requests one
// (ingestor backfill), the source's Backfiller runs it, one at a time in
// the order requested, and saves its progress after each chunk was
// acknowledged, so a backfill survives a restart of the ingestor and
// resumes after its last acknowledged chunk.

// BackfillState is where a backfill stands.
type BackfillState string

// The states of a backfill.
const (
	BackfillRequested BackfillState = "requested"
	BackfillRunning   BackfillState = "running"
	BackfillDone      BackfillState = "done"
	BackfillFailed    BackfillState = "failed"
)

// Backfill is a request to read a collection again, and its progress.
type Backfill struct {
	ID         string `json:"id"`
	Source     string `json:"source"`
	Collection string `json:"collection"`
	// Filter selects the rows (a SQL condition, a MongoDB filter document
	// in Extended JSON); empty reads them all.
	Filter    string        `json:"filter,omitempty"`
	ChunkSize int           `json:"chunk_size"`
	Reason    string        `json:"reason"` // requested, initial, position_lost
	State     BackfillState `json:"state"`
	// Begin is where the backfill began (its first watermark), once it did.
	Begin *Position `json:"begin,omitempty"`
	// After is the key of the last row of the last acknowledged chunk, as
	// the source's ChunkReader encodes it; empty before the first.
	After      json.RawMessage `json:"after,omitempty"`
	Rows       int64           `json:"rows"`       // published
	Superseded int64           `json:"superseded"` // read, but streamed while their chunk was read
	Chunks     int64           `json:"chunks"`
	Estimate   int64           `json:"estimate"` // rows the source expected, for an ETA
	Requested  time.Time       `json:"requested"`
	Started    time.Time       `json:"started,omitzero"`
	Updated    time.Time       `json:"updated,omitzero"`
	Finished   time.Time       `json:"finished,omitzero"`
	Error      string          `json:"error,omitempty"`
}

// DefaultChunkSize is the rows a backfill reads at once when the request
// does not say.
const DefaultChunkSize = 1024

// NewBackfill returns a request to backfill collection of source.
func NewBackfill(source, collection, filter string, chunkSize int, reason string) Backfill {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	now := time.Now().UTC()
	var nonce [3]byte
	_, _ = rand.Read(nonce[:])
	id := now.Format("20060102T150405.000Z") + "-" + hex.EncodeToString(nonce[:])
	return Backfill{
		ID: strings.ReplaceAll(id, ".", ""), Source: source, Collection: collection, Filter: filter,
		ChunkSize: chunkSize, Reason: reason, State: BackfillRequested, Requested: now,
	}
}

// Key returns the key the backfill is kept under.
func (b *Backfill) Key() string { return BackfillKey(b.Source, b.ID) }

// Full reports whether the backfill reads every row (and so may tell which
// keys are gone).
func (b *Backfill) Full() bool { return b.Filter == "" }

// Over reports whether the backfill is done or failed.
func (b *Backfill) Over() bool { return b.State == BackfillDone || b.State == BackfillFailed }

// BackfillKey returns the checkpoint key of backfill id of source; all the
// backfills of source share the prefix BackfillKey(source, "").
func BackfillKey(source, id string) string { return "backfill." + source + "." + id }

// BackfillStore keeps backfills (stream.Checkpoints keeps them in the
// checkpoint bucket).
type BackfillStore interface {
	Load(ctx context.Context, key string, v any) (bool, error)
	Save(ctx context.Context, key string, v any) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Backfills returns the backfills of source kept in store (every source's
// when source is empty), oldest request first.
func Backfills(ctx context.Context, store BackfillStore, source string) ([]Backfill, error) {
	prefix := "backfill."
	if source != "" {
		prefix = BackfillKey(source, "")
	}
	keys, err := store.Keys(ctx, prefix)
	if err != nil {
		return nil, fmt.Errorf("list backfills: %w", err)
	}
	out := make([]Backfill, 0, len(keys))
	for _, k := range keys {
		var b Backfill
		if ok, err := store.Load(ctx, k, &b); err != nil {
			return nil, err
		} else if ok {
			out = append(out, b)
		}
	}
	slices.SortFunc(out, func(a, b Backfill) int { return a.Requested.Compare(b.Requested) })
	return out, nil
}

// Row is one row of a chunk: its key and content (nil when the source
// could read the key only; consumers treat that like an update of a row
// that is gone).
type Row struct {
	Key   string
	After json.RawMessage
}

// ChunkReader is what a source lends its Backfiller.
type ChunkReader interface {
	// ReadChunk reads, in key order, at most n rows of collection matching
	// filter whose key comes after after (empty: from the first), and
	// returns them with the key of the last row it read (as it wants it back
	// in after) and whether it read to the end: rows it could not use do
	// not count as read to the end.
	// An error wrapping ErrPermanent (a filter the source refuses, a
	// collection it does not capture) fails the backfill.
	ReadChunk(ctx context.Context, collection, filter string, after json.RawMessage, n int) (rows []Row, last json.RawMessage, end bool, err error)
	// WriteWatermark writes a watermark carrying id into the source's log;
	// the capture loop hands it to Backfiller.Watermark when it reads it.
	WriteWatermark(ctx context.Context, id string) error
	// Estimate returns about how many rows of collection match filter.
	Estimate(ctx context.Context, collection, filter string) (int64, error)
}

var (
	metricBackfillRows = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_backfill_rows_total",
		Help: "Rows read by backfills, by source and result: published, or superseded (streamed while their chunk was read).",
	}, []string{"source", "result"})
	metricBackfills = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "reportes_cdc_backfills_total",
		Help: "Backfills by source and how they ended (done, failed).",
	}, []string{"source", "result"})
)

// Backfiller runs a source's backfills. The source creates one with
// NewBackfiller, runs Run beside its capture loop, and from that loop calls
// Observe for every key it streams, ObserveAll for a change that may touch
// any row of a collection (a TRUNCATE), and Watermark for every watermark
// it reads. A nil *Backfiller does nothing.
type Backfiller struct {
	origin Origin
	store  BackfillStore
	reader ChunkReader
	logger *slog.Logger
	poll   time.Duration

	kick chan struct{} // a request was saved: look now

	// The snapshots (backfills the source asked for itself) not over yet,
	// and whether Run listed the saved ones once: until then a snapshot
	// saved by an earlier run may be pending.
	snapMu    sync.Mutex
	snapshots map[string]bool
	listed    atomic.Bool
	open      atomic.Bool // a chunk's window is open: Observe records keys
	mu        sync.Mutex
	mark      *mark // the watermark the driver waits for
}

// markKind is what a watermark stands for.
type markKind string

const (
	markBegin markKind = "begin"
	markChunk markKind = "chunk"
)

// mark is a watermark the Backfiller wrote and waits for.
type mark struct {
	id       string
	kind     markKind
	bf       *Backfill
	rows     []Row
	observed map[string]struct{}
	all      bool          // ObserveAll: every row of the chunk is superseded
	last     bool          // the last chunk: the end marker follows its rows
	at       Position      // where the capture loop read it
	n        [2]int64      // rows published, superseded
	done     chan struct{} // closed once what the loop published for it is acknowledged
}

// BackfillOption configures a Backfiller.
type BackfillOption func(*Backfiller)

// WithBackfillLogger sets the logger (default: discard).
func WithBackfillLogger(l *slog.Logger) BackfillOption { return func(b *Backfiller) { b.logger = l } }

// WithBackfillPoll sets how often the Backfiller looks for new requests
// (default 1s).
func WithBackfillPoll(d time.Duration) BackfillOption { return func(b *Backfiller) { b.poll = d } }

// NewBackfiller returns the Backfiller of the source whose positions origin
// counts, keeping its backfills in store and reading chunks with reader.
func NewBackfiller(origin Origin, store BackfillStore, reader ChunkReader, opts ...BackfillOption) *Backfiller {
	b := &Backfiller{origin: origin, store: store, reader: reader, logger: slog.New(slog.DiscardHandler),
		poll: time.Second, kick: make(chan struct{}, 1), snapshots: map[string]bool{}}
	for _, opt := range opts {
		opt(b)
	}
	return b
}

// Request saves bf, a new backfill of this source, for Run to pick up. A
// snapshot the source takes itself (any reason but "requested") replaces
// the unfinished snapshots of its collection: they are saved as failed.
func (b *Backfiller) Request(ctx context.Context, bf Backfill) error {
	if bf.Reason != ReasonRequested {
		list, err := Backfills(ctx, b.store, b.origin.source)
		if err != nil {
			return err
		}
		for _, old := range list {
			if !old.Over() && old.Reason != ReasonRequested && old.Collection == bf.Collection {
				old.State, old.Error, old.Finished = BackfillFailed, "replaced by snapshot "+bf.ID, time.Now().UTC()
				if err := b.save(ctx, &old); err != nil {
					return err
				}
				b.snapshot(old.ID, false)
			}
		}
		b.snapshot(bf.ID, true)
	}
	if err := b.store.Save(ctx, bf.Key(), bf); err != nil {
		return err
	}
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return nil
}

// Snapshotting reports whether a snapshot of the source (a backfill it
// asked for itself: the first one, or one after a lost position) is not
// over yet: until then the source's data is not all in the stream.
func (b *Backfiller) Snapshotting() bool {
	if b == nil {
		return false
	}
	b.snapMu.Lock()
	defer b.snapMu.Unlock()
	return !b.listed.Load() || len(b.snapshots) > 0
}

// snapshot records whether the snapshot id is pending.
func (b *Backfiller) snapshot(id string, pending bool) {
	b.snapMu.Lock()
	defer b.snapMu.Unlock()
	if pending {
		b.snapshots[id] = true
	} else {
		delete(b.snapshots, id)
	}
}

// ReasonRequested is the reason of a backfill an operator asked for.
const ReasonRequested = "requested"

// Observe records that the capture loop streamed a change of key in
// collection. It costs an atomic load while no chunk is being read.
func (b *Backfiller) Observe(collection, key string) {
	if b == nil || !b.open.Load() {
		return
	}
	b.mu.Lock()
	if m := b.mark; m != nil && m.observed != nil && m.bf.Collection == collection {
		m.observed[key] = struct{}{}
	}
	b.mu.Unlock()
}

// ObserveAll records a change that may have touched every row of
// collection: the chunk being read is dropped and read again.
func (b *Backfiller) ObserveAll(collection string) {
	if b == nil || !b.open.Load() {
		return
	}
	b.mu.Lock()
	if m := b.mark; m != nil && m.bf.Collection == collection {
		m.all = true
	}
	b.mu.Unlock()
}

// IsWatermark reports whether id is one of this Backfiller's watermarks
// (of any run): the capture loop publishes nothing else for it.
func (b *Backfiller) IsWatermark(id string) bool {
	return strings.HasPrefix(id, b.watermarkPrefix())
}

func (b *Backfiller) watermarkPrefix() string { return "reportes:" + b.origin.name + ":" }

// Watermark handles the watermark id, read by the capture loop at position
// at: if the Backfiller waits for it, it publishes what it stands for
// through pub (a marker, or the chunk's rows). Watermarks of an earlier run
// (read again after a restart) are ignored.
func (b *Backfiller) Watermark(ctx context.Context, pub Publisher, id string, at Position) error {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	m := b.mark
	if m == nil || m.id != id {
		b.mu.Unlock()
		return nil
	}
	b.mark = nil
	b.open.Store(false)
	b.mu.Unlock()
	m.at = at
	if err := b.publish(ctx, pub, m); err != nil {
		return err
	}
	return pub.AfterAcked(func() { close(m.done) })
}

// publish publishes what m stands for, read at m.at.
func (b *Backfiller) publish(ctx context.Context, pub Publisher, m *mark) error {
	bf := m.bf
	switch m.kind {
	case markBegin:
		if !bf.Full() {
			return nil
		}
		_, err := NewSnapshot(pub, b.origin, m.at, bf.Reason).Begin(ctx, bf.Collection)
		return err
	}
	br := resumeSnapshot(pub, b.origin, *bf.Begin).resume(bf.Collection)
	if m.all {
		m.n[1] = int64(len(m.rows))
		return nil // read again
	}
	for _, r := range m.rows {
		if _, seen := m.observed[r.Key]; seen {
			m.n[1]++
			continue
		}
		if err := br.rowAt(ctx, r.Key, r.After, m.at); err != nil {
			return err
		}
		m.n[0]++
	}
	metricBackfillRows.WithLabelValues(b.origin.source, "published").Add(float64(m.n[0]))
	metricBackfillRows.WithLabelValues(b.origin.source, "superseded").Add(float64(m.n[1]))
	if m.last && bf.Full() {
		return br.End(ctx)
	}
	return nil
}

// Run runs the source's backfills, one at a time in the order requested,
// until ctx ends; it returns nil then. A backfill that fails for good is
// saved as failed with the reason; any other error is logged and the
// backfill is resumed after its last acknowledged chunk.
func (b *Backfiller) Run(ctx context.Context) error {
	t := time.NewTicker(b.poll)
	defer t.Stop()
	for {
		if err := b.runPending(ctx); err != nil && ctx.Err() == nil {
			b.logger.Warn("backfill interrupted; resuming after its last acknowledged chunk", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-b.kick:
		}
	}
}

func (b *Backfiller) runPending(ctx context.Context) error {
	list, err := Backfills(ctx, b.store, b.origin.source)
	if err != nil {
		return err
	}
	for _, bf := range list {
		if !bf.Over() && bf.Reason != ReasonRequested {
			b.snapshot(bf.ID, true)
		}
	}
	b.listed.Store(true)
	for _, bf := range list {
		if bf.Over() {
			continue
		}
		if err := b.run(ctx, &bf); err != nil {
			return fmt.Errorf("backfill %s of %s: %w", bf.ID, bf.Collection, err)
		}
	}
	return nil
}

// run runs bf from where it stands.
func (b *Backfiller) run(ctx context.Context, bf *Backfill) error {
	if bf.State == BackfillRequested {
		bf.State, bf.Started = BackfillRunning, time.Now().UTC()
		if n, err := b.reader.Estimate(ctx, bf.Collection, bf.Filter); err == nil {
			bf.Estimate = n
		}
		b.logger.Info("backfill started", "id", bf.ID, "collection", bf.Collection, "filter", bf.Filter,
			"reason", bf.Reason, "estimate", bf.Estimate)
		if err := b.save(ctx, bf); err != nil {
			return err
		}
	} else {
		b.logger.Info("backfill resumed", "id", bf.ID, "collection", bf.Collection, "chunks", bf.Chunks, "rows", bf.Rows)
	}
	if bf.Begin == nil {
		m, err := b.await(ctx, b.newMark(bf, markBegin, 0))
		if err != nil {
			return err
		}
		bf.Begin = &m.at
		if err := b.save(ctx, bf); err != nil {
			return err
		}
	}
	for {
		more, err := b.chunk(ctx, bf)
		if errors.Is(err, ErrPermanent) {
			return b.finish(ctx, bf, err)
		}
		if err != nil {
			return err
		}
		if !more {
			return b.finish(ctx, bf, nil)
		}
	}
}

// chunk reads and publishes the next chunk of bf and saves its progress;
// it reports whether rows may remain.
func (b *Backfiller) chunk(ctx context.Context, bf *Backfill) (bool, error) {
	m := b.newMark(bf, markChunk, bf.Chunks+1)
	m.observed = map[string]struct{}{}
	b.mu.Lock()
	b.mark = m
	b.open.Store(true) // before the read: every change streamed from now on is observed
	b.mu.Unlock()
	start := time.Now()
	rows, next, end, err := b.reader.ReadChunk(ctx, bf.Collection, bf.Filter, bf.After, bf.ChunkSize)
	read := time.Since(start)
	if err != nil {
		b.clear(m)
		return false, fmt.Errorf("read chunk: %w", err)
	}
	b.mu.Lock()
	m.rows, m.last = rows, end
	b.mu.Unlock()
	if _, err := b.await(ctx, m); err != nil {
		return false, err
	}
	b.logger.Debug("backfill chunk", "id", bf.ID, "chunk", bf.Chunks+1, "rows", len(rows), "read", read, "published", time.Since(start)-read)
	if m.all {
		return true, nil // a TRUNCATE met the chunk: read it again
	}
	bf.Chunks++
	bf.Rows += m.n[0]
	bf.Superseded += m.n[1]
	if len(next) > 0 {
		bf.After = next
	}
	if err := b.save(ctx, bf); err != nil {
		return false, err
	}
	return !m.last, nil
}

func (b *Backfiller) newMark(bf *Backfill, kind markKind, n int64) *mark {
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	id := fmt.Sprintf("%s%s:%s:%d:%s", b.watermarkPrefix(), bf.ID, kind, n, hex.EncodeToString(nonce[:]))
	return &mark{id: id, kind: kind, bf: bf, done: make(chan struct{})}
}

// await writes m's watermark and waits until the capture loop read it and
// what it published for it was acknowledged.
func (b *Backfiller) await(ctx context.Context, m *mark) (*mark, error) {
	b.mu.Lock()
	b.mark = m
	b.mu.Unlock()
	if err := b.reader.WriteWatermark(ctx, m.id); err != nil {
		b.clear(m)
		return nil, fmt.Errorf("write watermark: %w", err)
	}
	slow := time.NewTicker(time.Minute)
	defer slow.Stop()
	for {
		select {
		case <-m.done:
			return m, nil
		case <-ctx.Done():
			b.clear(m)
			return nil, ctx.Err()
		case <-slow.C:
			// The loop may be far behind the log (a backlog after an
			// outage); a watermark it never reads is a misconfiguration.
			b.logger.Warn("backfill still waiting for the capture to read its watermark", "id", m.id)
		}
	}
}

// clear forgets m if it is still awaited.
func (b *Backfiller) clear(m *mark) {
	b.mu.Lock()
	if b.mark == m {
		b.mark = nil
		b.open.Store(false)
	}
	b.mu.Unlock()
}

func (b *Backfiller) save(ctx context.Context, bf *Backfill) error {
	bf.Updated = time.Now().UTC()
	if err := b.store.Save(ctx, bf.Key(), bf); err != nil {
		return fmt.Errorf("save backfill progress: %w", err)
	}
	return nil
}

// finish saves bf as done, or as failed with failure.
func (b *Backfiller) finish(ctx context.Context, bf *Backfill, failure error) error {
	bf.State, bf.Finished = BackfillDone, time.Now().UTC()
	if failure != nil {
		bf.State, bf.Error = BackfillFailed, failure.Error()
		b.logger.Error("backfill failed", "id", bf.ID, "collection", bf.Collection, "err", failure)
	} else {
		b.logger.Info("backfill done", "id", bf.ID, "collection", bf.Collection, "rows", bf.Rows,
			"superseded", bf.Superseded, "chunks", bf.Chunks, "took", bf.Finished.Sub(bf.Started).Round(time.Millisecond))
	}
	metricBackfills.WithLabelValues(b.origin.source, string(bf.State)).Inc()
	if err := b.save(ctx, bf); err != nil {
		return err
	}
	b.snapshot(bf.ID, false)
	return nil
}
