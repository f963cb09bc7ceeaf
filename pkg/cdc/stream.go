package cdc

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// StreamConfig describes the JetStream stream change events are stored in.
type StreamConfig struct {
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
	// what rebuilding a view from the stream needs.
	MaxAge time.Duration
	// Replicas of the stream (default 1).
	Replicas int
}

// Defaults for StreamConfig.
const (
	DefaultStreamName = "REPORTES_CDC"
	DefaultDuplicates = 2 * time.Minute
)

func (c StreamConfig) withDefaults() StreamConfig {
	if c.Name == "" {
		c.Name = DefaultStreamName
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = DefaultSubjectPrefix
	}
	if c.Duplicates == 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	return c
}

// EnsureStream creates the stream, or updates it to cfg when it exists.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg StreamConfig) (jetstream.Stream, error) {
	cfg = cfg.withDefaults()
	s, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        cfg.Name,
		Description: "reportes change events (docs/events.md)",
		Subjects:    []string{cfg.SubjectPrefix + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Duplicates:  cfg.Duplicates,
		MaxAge:      cfg.MaxAge,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Name, err)
	}
	return s, nil
}
