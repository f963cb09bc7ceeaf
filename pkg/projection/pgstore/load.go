package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// PartitionState is one partition as the tables hold it.
type PartitionState struct {
	Seq        uint64
	Orders     int64
	CommitTime time.Time
	Sellers    map[string]int64 // codes with a non-zero count
}

// State is what a reader of the store holds: every partition's counts, and
// the employees (when partition 0 was loaded).
type State struct {
	Partitions map[int]PartitionState
	Employees  map[string]Employee // by key; nil when partition 0 was not loaded
}

// Load reads partition n, or every partition when n < 0, in one snapshot
// of the database.
func (s *Store) Load(ctx context.Context, n int) (*State, error) {
	st := &State{Partitions: map[int]PartitionState{}}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if err := s.loadPositions(ctx, tx, n, st); err != nil {
			return err
		}
		if err := s.loadSellers(ctx, tx, n, st); err != nil {
			return err
		}
		if n > 0 {
			return nil
		}
		return s.loadEmployees(ctx, tx, st)
	})
	if err != nil {
		return nil, fmt.Errorf("load the view store: %w", err)
	}
	return st, nil
}

func (s *Store) loadPositions(ctx context.Context, tx pgx.Tx, n int, st *State) error {
	rows, _ := tx.Query(ctx, fmt.Sprintf(`SELECT partition, seq, orders, commit_time FROM %s.positions WHERE $1 < 0 OR partition = $1`, s.schema), n)
	var p int
	var seq, orders int64
	var commit pgtype.Timestamptz
	_, err := pgx.ForEachRow(rows, []any{&p, &seq, &orders, &commit}, func() error {
		st.Partitions[p] = PartitionState{Seq: uint64(seq), Orders: orders, CommitTime: commit.Time, Sellers: map[string]int64{}} //nolint:gosec // stream sequences
		return nil
	})
	return err
}

func (s *Store) loadSellers(ctx context.Context, tx pgx.Tx, n int, st *State) error {
	rows, _ := tx.Query(ctx, fmt.Sprintf(`SELECT partition, seller, orders FROM %s.seller_orders WHERE ($1 < 0 OR partition = $1) AND orders <> 0`, s.schema), n)
	var p int
	var seller string
	var orders int64
	_, err := pgx.ForEachRow(rows, []any{&p, &seller, &orders}, func() error {
		if ps, ok := st.Partitions[p]; ok {
			ps.Sellers[seller] = orders
		}
		return nil
	})
	return err
}

func (s *Store) loadEmployees(ctx context.Context, tx pgx.Tx, st *State) error {
	st.Employees = map[string]Employee{}
	rows, _ := tx.Query(ctx, fmt.Sprintf(`SELECT key, code, role, active FROM %s.employees`, s.schema))
	var e Employee
	_, err := pgx.ForEachRow(rows, []any{&e.Key, &e.Code, &e.Role, &e.Active}, func() error {
		e.Key = append([]byte(nil), e.Key...)
		st.Employees[string(e.Key)] = e
		return nil
	})
	return err
}
