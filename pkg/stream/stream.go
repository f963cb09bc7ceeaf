package stream

import (
	"context"
	"errors"
	"fmt"
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
}

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
	return c
}

// Ensure creates the stream when it does not exist. When it does, it
// makes sure the stream captures prefix.> and deduplicates within
// cfg.Duplicates, and leaves every other setting as it is: an operator who
// edited the stream (replicas, limits, placement, compression, persist
// mode...) keeps the edit across restarts of the ingestor. A stream that
// deletes events before their time (work-queue or interest retention)
// cannot rebuild a view and is refused.
func Ensure(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	subject := cfg.SubjectPrefix + ".>"
	s, err := OpenOrCreate(ctx,
		func(ctx context.Context) (jetstream.Stream, error) { return js.Stream(ctx, cfg.Name) },
		func(ctx context.Context) (jetstream.Stream, error) {
			return js.CreateStream(ctx, jetstream.StreamConfig{
				Name:        cfg.Name,
				Description: "reportes change events (docs/events.md)",
				Subjects:    []string{subject},
				Storage:     jetstream.FileStorage,
				Retention:   jetstream.LimitsPolicy,
				Duplicates:  cfg.Duplicates,
				MaxAge:      cfg.MaxAge,
				Replicas:    cfg.Replicas,
			})
		})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	have := s.CachedInfo().Config
	if have.Retention != jetstream.LimitsPolicy {
		return nil, fmt.Errorf("ensure stream %s: its retention is %s; views are rebuilt from the stream's history, which needs limits retention", cfg.Name, have.Retention)
	}
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
