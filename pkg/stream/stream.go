package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/reportes/reportes/pkg/cdc"
)

// Config describes the JetStream stream change events are stored in.
type Config struct {
	// Name of the stream (default "REPORTES_CDC").
	Name string
	// SubjectPrefix of the events (default "reportes.cdc"); the stream
	// captures prefix.>.
	SubjectPrefix string
	// Duplicates is the deduplication window (default 2 minutes). A source
	// that restarts republishes at most what it published since its last
	// acknowledged position; the window must be longer than that takes.
	Duplicates time.Duration
	// MaxAge bounds how long events are kept; 0 keeps them forever, which is
	// what rebuilding a view from the stream needs. Set when the stream is
	// created; an existing stream keeps its own.
	MaxAge time.Duration
	// Replicas of the stream (default 1). Set when the stream is created; an
	// existing stream keeps its own.
	Replicas int
	// History is what the stream keeps of each key (default HistoryCompact).
	// Set when the stream is created; an existing stream keeps its own, and
	// Ensure logs what it does.
	History History
	// Logger receives what Ensure finds (default: discard).
	Logger *slog.Logger
}

// History is what a stream keeps of each key's events.
type History string

const (
	// HistoryCompact keeps the last event of each subject (MaxMsgsPerSubject
	// 1): events are published on a subject per key, so the stream holds one
	// message per key (the current row, or the delete's tombstone) and per
	// snapshot marker, and its size, and a rebuild's time, follow the live
	// data instead of the time it has been running.
	HistoryCompact History = "compact"
	// HistoryAll keeps every event, as long as the stream's limits allow.
	HistoryAll History = "all"
)

// Defaults for Config.
const (
	DefaultName       = "REPORTES_CDC"
	DefaultDuplicates = 2 * time.Minute
)

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = cdc.DefaultSubjectPrefix
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.History == "" {
		c.History = HistoryCompact
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// maxPerSubject is the MaxMsgsPerSubject a new stream gets for h.
func (h History) maxPerSubject() int64 {
	if h == HistoryAll {
		return -1
	}
	return 1
}

// Ensure creates the stream when it does not exist. When it does, it
// makes sure the stream captures prefix.> and deduplicates within
// cfg.Duplicates, and leaves every other setting as it is: an operator who
// edited the stream (replicas, limits, placement, compression, persist
// mode...) keeps the edit across restarts of the ingestor. A stream that
// deletes events before their time (work-queue or interest retention)
// cannot rebuild a view and is refused. A new stream keeps what
// cfg.History says; Ensure logs what an existing one keeps (History) and
// warns about limits that may drop the only event of a live key.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	subject := cfg.SubjectPrefix + ".>"
	s, err := OpenOrCreate(ctx,
		func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) },
		func(ctx context.Context) (jetstream.Stream, error) {
			return js.CreateStream(ctx, jetstream.StreamConfig{
				Name:              cfg.Name,
				Description:       "reportes change events (docs/events.md)",
				Subjects:          []string{subject},
				Storage:           jetstream.FileStorage,
				Retention:         jetstream.LimitsPolicy,
				Duplicates:        cfg.Duplicates,
				MaxAge:            cfg.MaxAge,
				MaxMsgsPerSubject: cfg.History.maxPerSubject(),
				Replicas:          cfg.Replicas,
			})
		})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention != jetstream.LimitsPolicy {
		return nil, fmt.Errorf("ensure stream %s: its retention is %s; views are rebuilt from the stream's history, which needs limits retention", cfg.Name, have.Retention)
	}
	logHistory(cfg, have)
	want := have
	if !Captures(want.Subjects, subject) {
		want.Subjects = append(slices.Clone(want.Subjects), subject)
	}
	want.Duplicates = cfg.Duplicates
	if want.Duplicates == have.Duplicates && len(want.Subjects) == len(have.Subjects) {
		return s, nil
	}
	if s, err = js.UpdateStream(ctx, want); err != nil {
		return nil, fmt.Errorf("ensure stream %s: update subjects %v and deduplication window %s: %w", cfg.Name, want.Subjects, want.Duplicates, err)
	}
	return s, nil
}

// logHistory says what the stream keeps, and warns when it is not what
// cfg asks for or when its limits may drop events a view needs.
func logHistory(cfg Config, have jetstream.StreamConfig) {
	log := cfg.Logger.With("stream", have.Name, "max_msgs_per_subject", have.MaxMsgsPerSubject)
	keeps := Keeps(have)
	switch {
	case keeps == cfg.History && keeps == HistoryCompact:
		log.Info("stream keeps the last event of each key (compacted)")
	case keeps == cfg.History:
		log.Info("stream keeps every event; its size grows with the history")
	case keeps == HistoryCompact:
		log.Warn("stream keeps the last event of each key, not every event as asked; an operator's setting stays (nats stream edit --max-msgs-per-subject -1 keeps every event)",
			"want", cfg.History)
	default:
		log.Warn("stream keeps every event, not only the last of each key as asked: its size grows with the history; an operator's setting stays (docs/operations.md, bounded history, tells how to compact it)",
			"want", cfg.History)
	}
	if lossy := Lossy(have); lossy != "" {
		log.Warn("stream limits may drop the only event of a live key; a view rebuilt from it, or restored from a snapshot older than what they dropped, lacks it (reportes_projection_events_missed_total)",
			"limits", lossy)
	}
}

// Keeps returns what a stream of cfg keeps of each key: HistoryCompact
// when it keeps a bounded number of messages per subject, HistoryAll
// otherwise.
func Keeps(cfg jetstream.StreamConfig) History {
	if cfg.MaxMsgsPerSubject > 0 {
		return HistoryCompact
	}
	return HistoryAll
}

// Lossy describes the settings of a stream that may delete the only
// message of a subject, which compaction never does: limits on age, bytes
// or messages, and per-message TTLs. It is empty when there are none; a
// purge is no setting and is not told.
func Lossy(cfg jetstream.StreamConfig) string {
	var what []string
	if cfg.MaxAge > 0 {
		what = append(what, "max age "+cfg.MaxAge.String())
	}
	if cfg.MaxBytes > 0 {
		what = append(what, fmt.Sprintf("max bytes %d", cfg.MaxBytes))
	}
	if cfg.MaxMsgs > 0 {
		what = append(what, fmt.Sprintf("max messages %d", cfg.MaxMsgs))
	}
	if cfg.AllowMsgTTL {
		what = append(what, "per-message TTLs allowed")
	}
	return strings.Join(what, ", ")
}

// Captures reports whether a stream on subjects captures every message of
// subject (a filter like prefix.>).
func Captures(subjects []string, subject string) bool {
	return slices.ContainsFunc(subjects, func(f string) bool { return covers(f, subject) })
}

// covers reports whether every subject that subject matches also matches
// filter, token by token ("*" one token, ">" the rest).
func covers(filter, subject string) bool {
	f, s := strings.Split(filter, "."), strings.Split(subject, ".")
	for i, tok := range f {
		switch {
		case tok == ">":
			return i < len(s)
		case i >= len(s):
			return false
		case tok == "*":
			if s[i] == ">" {
				return false
			}
		case tok != s[i]:
			return false
		}
	}
	return len(f) == len(s)
}

// OpenOrCreate opens a JetStream stream or bucket with open and, when it
// does not exist, creates it with create; when another process created it
// meanwhile, it opens that one. What exists is used as it is.
func OpenOrCreate[T any](ctx context.Context, open, create func(context.Context) (T, error)) (T, error) {
	v, err := open(ctx)
	if !errors.Is(err, jetstream.ErrStreamNotFound) && !errors.Is(err, jetstream.ErrBucketNotFound) {
		return v, err
	}
	v, err = create(ctx)
	if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) {
		return open(ctx)
	}
	return v, err
}
