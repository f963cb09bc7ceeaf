package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

var slotName = regexp.MustCompile(`^[a-z0-9_]{1,63}$`)

// Config configures a Source.
type Config struct {
	// ConnString is a PostgreSQL URL or keyword/value string. The role needs
	// REPLICATION and SELECT on the captured tables (and ownership of them,
	// or a superuser, if the publication must be created).
	ConnString string
	// Tables to capture, schema-qualified ("public.empleados").
	Tables []string
	// Slot and Publication names (default "reportes").
	Slot        string
	Publication string
	// StatusInterval is how often the flushed position is reported to the
	// server (default 1s).
	StatusInterval time.Duration
	// Keep names the columns consumers need from every row: when a row is
	// too large for a NATS message, its event keeps them (KeepOnOversize).
	Keep []string
	// ChunkSize is the rows a snapshot reads at once (default
	// cdc.DefaultChunkSize); a requested backfill says its own.
	ChunkSize int
}

// Option configures a Source.
type Option func(*Source)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Source) { s.logger = l } }

func (c *Config) validate() error {
	if c.ConnString == "" {
		return errors.New("postgres source: missing connection string")
	}
	if len(c.Tables) == 0 {
		return errors.New("postgres source: no tables to capture")
	}
	for _, t := range c.Tables {
		if strings.Count(t, ".") != 1 {
			return fmt.Errorf("postgres source: table %q must be schema-qualified, like public.empleados", t)
		}
	}
	if c.Slot == "" {
		c.Slot = "reportes"
	}
	if c.Publication == "" {
		c.Publication = "reportes"
	}
	// The replication protocol takes the slot name unquoted, and PostgreSQL
	// cuts longer names to 63 bytes: the publication it created would then
	// never be found again under the configured name.
	if !slotName.MatchString(c.Slot) {
		return fmt.Errorf("postgres source: slot %q must be 1 to 63 lowercase letters, digits or underscores", c.Slot)
	}
	if len(c.Publication) > 63 || strings.ContainsRune(c.Publication, 0) {
		return fmt.Errorf("postgres source: publication name %q must be at most 63 bytes, without NUL", c.Publication)
	}
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	return nil
}
