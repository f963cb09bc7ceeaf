package pgstore

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

// DefaultSchema is the PostgreSQL schema of the store (VIEW_SCHEMA).
const DefaultSchema = "reportes_view"

// DefaultUpdatesPrefix is the prefix of the subjects deltas are published
// on: <prefix>.<partition>.
const DefaultUpdatesPrefix = "reportes.view"

// Store is the view store in one PostgreSQL schema.
type Store struct {
	pool       *pgxpool.Pool
	schema     string // the schema, quoted
	view       projection.Schema
	partitions int
	prefix     string // of the change events' subjects
	updates    string // of the deltas' subjects
	logger     *slog.Logger
	orders     string // the orders' collection subject, with its dot
}

// Option configures a Store.
type Option func(*Store)

// WithPartitions sets the partition count a new store gets and an existing
// one must have (projectors set it; readers take the store's).
func WithPartitions(n int) Option { return func(s *Store) { s.partitions = n } }

// WithSubjectPrefix sets the change events' subject prefix (default
// cdc.DefaultSubjectPrefix).
func WithSubjectPrefix(p string) Option { return func(s *Store) { s.prefix = p } }

// WithUpdatesPrefix sets the deltas' subject prefix (default
// DefaultUpdatesPrefix).
func WithUpdatesPrefix(p string) Option { return func(s *Store) { s.updates = p } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.logger = l } }

// Open connects to the database at connString and migrates the store in
// schema (DefaultSchema when empty), for the view described by view.
func Open(ctx context.Context, connString, schema string, view projection.Schema, opts ...Option) (*Store, error) {
	if schema == "" {
		schema = DefaultSchema
	}
	s := &Store{
		schema: pgx.Identifier{schema}.Sanitize(), view: view,
		prefix: cdc.DefaultSubjectPrefix, updates: DefaultUpdatesPrefix, logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		o(s)
	}
	s.orders = cdc.CollectionSubject(s.prefix, cdc.SourceMongo, view.Orders) + "."
	pool, err := pgxpool.New(ctx, connString)
	if err != nil {
		return nil, fmt.Errorf("connect to the view store: %w", err)
	}
	s.pool = pool
	if err := migrate(ctx, pool, schema, s.partitions); err != nil {
		pool.Close()
		return nil, fmt.Errorf("view store %s: %w", schema, err)
	}
	if s.partitions == 0 {
		err := pool.QueryRow(ctx, fmt.Sprintf(`SELECT partitions FROM %s.meta`, s.schema)).Scan(&s.partitions)
		if errors.Is(err, pgx.ErrNoRows) {
			pool.Close()
			return nil, fmt.Errorf("view store %s has no partitions yet: start a projector first", schema)
		}
		if err != nil {
			pool.Close()
			return nil, fmt.Errorf("view store %s: read the partition count: %w", schema, err)
		}
	}
	return s, nil
}

// Close closes the store's connections.
func (s *Store) Close() { s.pool.Close() }

// Partitions returns the store's partition count.
func (s *Store) Partitions() int { return s.partitions }

// UpdatesSubject is the subject of partition n's deltas; n < 0 gives the
// wildcard of all of them.
func (s *Store) UpdatesSubject(n int) string {
	if n < 0 {
		return s.updates + ".*"
	}
	return fmt.Sprintf("%s.%d", s.updates, n)
}

// Keeps returns the subject filter of partition n (see
// projection.WithSubjectFilter): the order events of its keys, the
// orders' snapshot markers, and, for partition 0, every other event.
func (s *Store) Keeps(n int) func(subject string) bool {
	return func(subject string) bool {
		rest, ok := strings.CutPrefix(subject, s.orders)
		if !ok {
			return n == 0
		}
		if strings.IndexByte(rest, '.') >= 0 {
			return true // ~snapshot_begin.<series> or ~snapshot_end.<series>: every partition
		}
		return s.partitionOfToken(rest) == n
	}
}

// PartitionOf returns the partition of an order key.
func (s *Store) PartitionOf(key string) int { return s.partitionOfToken(cdc.KeyToken(key)) }

func (s *Store) partitionOfToken(token string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(token))
	return int(h.Sum32() % uint32(s.partitions)) //nolint:gosec // partitions is a small positive count
}

// flip maps a version to a bigint whose order is the version's.
func flip(v uint64) int64 { return int64(v ^ 1<<63) } //nolint:gosec // the point of it

// unflip is flip's inverse.
func unflip(v int64) uint64 { return uint64(v) ^ 1<<63 } //nolint:gosec // the point of it

// positionEvery bounds how long a partition that reads only other
// partitions' events goes without recording its position.
const positionEvery = time.Second
