package mongo

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"

	"github.com/reportes/reportes/pkg/cdc"
)

// Mode selects how changes are captured.
type Mode string

// Capture modes.
const (
	ModeAuto         Mode = "auto"
	ModeChangeStream Mode = "changestream"
	ModeOplog        Mode = "oplog"
)

// ParseMode parses a Mode, naming the accepted values on error.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(strings.ToLower(s)); m {
	case "", ModeAuto:
		return ModeAuto, nil
	case ModeChangeStream, ModeOplog:
		return m, nil
	}
	return "", fmt.Errorf("unknown capture mode %q (want auto, changestream or oplog)", s)
}

// Config configures a Source.
type Config struct {
	URI        string
	Database   string
	Collection string
	Mode       Mode
	// PollInterval is how long the oplog tail waits when caught up
	// (default 10ms).
	PollInterval time.Duration
	// SaveInterval bounds how often the position is written to the
	// checkpoint bucket (default 1s).
	SaveInterval time.Duration
	// Keep names the fields consumers need from every document, dots
	// descending into embedded documents ("venta.vendedor"): when a document
	// is too large for a NATS message, its event keeps the top-level fields
	// that hold them (KeepOnOversize).
	Keep []string
	// WatermarkCollection is the collection of the database the backfill
	// watermarks are written to (default DefaultWatermarkCollection); the
	// role needs insert and remove on it.
	WatermarkCollection string
	// ChunkSize is the documents a snapshot reads at once (default
	// cdc.DefaultChunkSize); a requested backfill says its own.
	ChunkSize int
}

// Option configures a Source.
type Option func(*Source)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.logger = l } }

// Source captures one collection. Use New, then run it under cdc.Supervise.
type Source struct {
	cfg            Config
	checkpoint     Checkpoints
	logger         *slog.Logger
	origin         cdc.Origin
	ns             string
	acked          atomic.Pointer[state]
	streaming      atomic.Bool
	batchBytes     int                            // bound of an oplog batch handed to publishing, in bytes
	watermarks     string                         // namespace of the watermark collection
	backfill       *cdc.Backfiller                // of the current Run
	backfiller     atomic.Pointer[cdc.Backfiller] // backfill, for Streaming on other goroutines
	startBackfills func()                         // runs the current Run's Backfiller, once
	chunks         *chunks                        // of the current Run
}

// Checkpoints keeps the source's position (stream.Checkpoints keeps it in
// a JetStream bucket).
type Checkpoints interface {
	Load(ctx context.Context, key string, v any) (bool, error)
	Save(ctx context.Context, key string, v any) error
	Delete(ctx context.Context, key string) error
	Keys(ctx context.Context, prefix string) ([]string, error)
}

// Streaming reports whether the source is past its snapshot and following
// the change stream or oplog.
func (s *Source) Streaming() bool {
	return s.streaming.Load() && !s.backfiller.Load().Snapshotting()
}

// state is the checkpoint of a Source.
type state struct {
	Mode         Mode            `json:"mode"`
	Scope        string          `json:"scope,omitempty"` // of a change stream: changeScope
	SnapshotDone bool            `json:"snapshot_done"`
	Snapshot     string          `json:"snapshot,omitempty"`
	OplogTS      *oplogTS        `json:"oplog_ts,omitempty"`
	ResumeToken  json.RawMessage `json:"resume_token,omitempty"`
}

type oplogTS struct {
	T uint32 `json:"t"`
	I uint32 `json:"i"`
}

func (ts oplogTS) version() uint64 { return uint64(ts.T)<<32 | uint64(ts.I) }
func (ts oplogTS) String() string  { return string(ts.append(nil)) }

func (ts oplogTS) append(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(ts.T), 10)
	return strconv.AppendUint(append(b, '.'), uint64(ts.I), 10)
}

// New returns a Source.
func New(cfg Config, checkpoints Checkpoints, opts ...Option) (*Source, error) {
	switch {
	case cfg.URI == "":
		return nil, errors.New("mongo source: missing URI")
	case cfg.Database == "" || cfg.Collection == "":
		return nil, errors.New("mongo source: missing database or collection")
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeAuto
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 10 * time.Millisecond
	}
	if cfg.SaveInterval <= 0 {
		cfg.SaveInterval = time.Second
	}
	if cfg.WatermarkCollection == "" {
		cfg.WatermarkCollection = DefaultWatermarkCollection
	}
	ns := cfg.Database + "." + cfg.Collection
	s := &Source{cfg: cfg, checkpoint: checkpoints, logger: slog.New(slog.DiscardHandler),
		origin: cdc.NewOrigin(cdc.SourceMongo, ns), ns: ns, batchBytes: oplogBatchBytes,
		watermarks: cfg.Database + "." + cfg.WatermarkCollection}
	for _, opt := range opts {
		opt(s)
	}
	return s, nil
}

// Name implements cdc.Source.
func (s *Source) Name() string { return cdc.SourceMongo }

// KeepOnOversize returns the top-level fields the collection's events keep
// when a document is too large to publish whole (those that hold
// Config.Keep), for stream.WithKeepOnOversize.
func (s *Source) KeepOnOversize() map[string][]string {
	var top []string
	for _, path := range s.cfg.Keep {
		field, _, _ := strings.Cut(path, ".")
		top = append(top, field)
	}
	return map[string][]string{s.ns: top}
}

func (s *Source) checkpointKey() string {
	return "mongo." + cdc.SubjectToken(s.cfg.Database, false) + "." + cdc.SubjectToken(s.cfg.Collection, false)
}

// Run implements cdc.Source. It contacts the server before anything else,
// so that an unreachable server is reported within seconds (and retried by
// the supervisor), and returns a permanent error (cdc.Permanent) when the
// server refuses the credentials or the rights the capture needs.
func (s *Source) Run(ctx context.Context, pub cdc.Publisher) error {
	defer s.streaming.Store(false)
	client, err := s.connect(ctx)
	if err != nil {
		return err
	}
	defer client.Disconnect(context.WithoutCancel(ctx)) //nolint:errcheck // best effort on the way out
	// Backfills (the snapshots too) read their chunks beside the capture,
	// which carries their watermarks.
	s.chunks = s.newChunks(client)
	s.backfill = cdc.NewBackfiller(s.origin, s.checkpoint, s.chunks, cdc.WithBackfillLogger(s.logger))
	s.backfiller.Store(s.backfill)
	bctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	// Started by the capture once its stream or oplog cursor starts at a
	// position before any watermark the Backfiller writes.
	s.startBackfills = sync.OnceFunc(func() {
		go func() {
			defer close(done)
			_ = s.backfill.Run(bctx)
		}()
	})
	defer func() {
		stop()
		s.startBackfills()
		<-done
	}()
	err = s.capture(ctx, client, pub)
	if refused(err) && !errors.Is(err, cdc.ErrPermanent) {
		return cdc.Permanent(err)
	}
	return err
}

// capture picks the capture mode and runs it on a client whose server
// answered.
func (s *Source) capture(ctx context.Context, client *mongo.Client, pub cdc.Publisher) error {
	var st state
	found, err := s.checkpoint.Load(ctx, s.checkpointKey(), &st)
	if err != nil {
		return err
	}
	mode := s.cfg.Mode
	if mode == ModeAuto {
		if found && st.Mode != "" {
			mode = st.Mode
		} else if mode, err = detectMode(ctx, client.Database(s.cfg.Database).Collection(s.cfg.Collection)); err != nil {
			return err
		}
	}
	if found && st.Mode != mode {
		s.logger.Warn("capture mode changed; the saved position does not apply, taking a new snapshot", "from", st.Mode, "to", mode)
		st = state{}
		found = false
	}
	s.logger.Info("capturing", "collection", s.ns, "mode", mode)
	switch mode {
	case ModeOplog:
		return s.runOplog(ctx, client, pub, st, found)
	default:
		return s.runChangeStream(ctx, client, pub, st, found)
	}
}

// detectMode asks the server for a change stream and falls back to the oplog
// when it answers that it has none.
func detectMode(ctx context.Context, coll *mongo.Collection) (Mode, error) {
	cs, err := coll.Watch(ctx, mongo.Pipeline{})
	if err == nil {
		_ = cs.Close(ctx)
		return ModeChangeStream, nil
	}
	var ce mongo.CommandError
	if errors.As(err, &ce) && (ce.HasErrorCode(238) || ce.HasErrorCode(40573) || ce.HasErrorCode(115) || ce.HasErrorCode(59)) {
		return ModeOplog, nil
	}
	return "", fmt.Errorf("detect change stream support: %w", err)
}

// snapshot requests a full backfill of the collection, which runs beside
// the capture (cdc.Backfiller): a first snapshot, or one after a lost
// position, is read the way any backfill is. It returns the backfill's id.
func (s *Source) snapshot(ctx context.Context, reason string) (string, error) {
	bf := cdc.NewBackfill(cdc.SourceMongo, s.ns, "", s.cfg.ChunkSize, reason)
	if err := s.backfill.Request(ctx, bf); err != nil {
		return "", err
	}
	s.logger.Info("snapshot requested", "collection", s.ns, "reason", reason, "backfill", bf.ID)
	return bf.ID, nil
}

// publishChange publishes ev, which err (from reading the change) may call
// unusable (see salvage).
func (s *Source) publishChange(ctx context.Context, pub cdc.Publisher, ev *cdc.Event, err error) error {
	if err != nil {
		publish, err := s.salvage(err, ev.Op, ev.ID, ev.Key)
		if !publish {
			return err
		}
		ev.After, ev.Before = nil, nil
	}
	s.backfill.Observe(ev.Collection, ev.Key)
	setLastCommit(ev.CommitTime)
	cdc.CountRead(cdc.SourceMongo, 1)
	return pub.Publish(ctx, ev)
}

// salvage handles err, met reading the change with id and key: when it
// calls the change unusable (errUnusable), the source read something it
// cannot turn into a whole event, such as a malformed document or one
// without _id. Returning that error would restart the source on the same
// change for ever, so it is logged and counted instead, and what can be
// published is: the key alone (consumers treat it like an update of a
// document that is gone), or nothing without a key. It reports whether the
// key is to be published; any other error is returned.
func (s *Source) salvage(err error, op cdc.Op, id, key string) (bool, error) {
	if !errors.Is(err, errUnusable) {
		return false, err
	}
	reason := "no_key"
	if key != "" {
		reason = "unreadable_document"
	}
	metricSkipped.WithLabelValues(reason).Inc()
	s.logger.Warn("change the source cannot publish whole; publishing what it can",
		"collection", s.ns, "id", id, "op", op, "key", cdc.Bound(key), "reason", reason, "err", err)
	return key != "", nil
}

// saver writes the acknowledged position to the checkpoint bucket when it
// changed, at most once per SaveInterval (and once more on the way out).
type saver struct {
	s     *Source
	last  *state
	saved time.Time
}

func (v *saver) maybeSave(ctx context.Context, force bool) error {
	cur := v.s.acked.Load()
	if cur == nil || cur == v.last || (!force && time.Since(v.saved) < v.s.cfg.SaveInterval) {
		return nil
	}
	if err := v.s.checkpoint.Save(ctx, v.s.checkpointKey(), cur); err != nil {
		return err
	}
	v.last, v.saved = cur, time.Now()
	return nil
}

func (v *saver) final(pub cdc.Publisher) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		v.s.logger.Warn("stopping with unacknowledged events; they will be republished on restart", "err", err)
	}
	if err := v.maybeSave(ctx, true); err != nil {
		return err
	}
	v.s.logger.Info("capture stopped", "collection", v.s.ns)
	return context.Canceled
}

// errUnusable marks what the server returned that no retry can turn into a
// whole event (a malformed document, one without _id): see publishChange.
var errUnusable = errors.New("unusable change")

// maxKeyBytes bounds a key in an event. An _id may be as large as a document
// (16 MiB); the key travels in every event of the document besides the
// document itself, and an event the stream refuses would stop the source on
// it for ever. A longer key is cut and hashed (cdc.Bound): the same _id
// always gets the same key, and keys that large were never publishable.
const maxKeyBytes = 256 << 10

// documentJSON returns a document's key and its relaxed Extended JSON. When
// the document cannot be encoded it returns the key alone, if it has one,
// and an error wrapping errUnusable.
func documentJSON(doc bson.Raw) (string, json.RawMessage, error) {
	id, err := doc.LookupErr("_id")
	if err != nil {
		return "", nil, fmt.Errorf("%w: document without _id: %w", errUnusable, err)
	}
	key, err := keyOf(id)
	if err != nil {
		return "", nil, err
	}
	out, err := encodeDocument(make([]byte, 0, len(doc)+len(doc)/2), doc)
	if err != nil {
		return key, nil, fmt.Errorf("%w: document %s: encode as JSON: %w", errUnusable, cdc.Bound(key), err)
	}
	return key, out, nil
}

// keyOf renders an _id: ObjectIDs as their hex, strings as themselves and
// anything else as its relaxed Extended JSON. An empty string, which would
// be no key at all for consumers, is its JSON form `""`; keys over
// maxKeyBytes are bounded.
func keyOf(id bson.RawValue) (string, error) {
	var key string
	switch id.Type {
	case bson.TypeObjectID:
		oid, ok := id.ObjectIDOK()
		if !ok {
			return "", fmt.Errorf("%w: malformed ObjectID _id", errUnusable)
		}
		return hex.EncodeToString(oid[:]), nil
	case bson.TypeString:
		s, ok := id.StringValueOK()
		if !ok {
			return "", fmt.Errorf("%w: malformed string _id", errUnusable)
		}
		key = s
		if key == "" {
			key = `""`
		}
	default:
		out, err := extJSONValue(id)
		if err != nil {
			return "", fmt.Errorf("%w: encode _id: %w", errUnusable, err)
		}
		key = string(out)
	}
	if len(key) > maxKeyBytes {
		key = cdc.Bound(key)
	}
	return key, nil
}

// extJSONValue is the relaxed Extended JSON of one value. The driver panics
// on some malformed values instead of failing: that is an error too.
func extJSONValue(v bson.RawValue) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("malformed BSON value: %v", r)
		}
	}()
	out, err = bson.MarshalExtJSON(bson.D{{Key: "k", Value: v}}, false, false)
	if err != nil {
		return nil, err
	}
	return out[5 : len(out)-1], nil // {"k":<value>}
}
