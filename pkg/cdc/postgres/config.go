package postgres

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

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
	Logger         *slog.Logger
}

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
	if c.StatusInterval <= 0 {
		c.StatusInterval = time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}
