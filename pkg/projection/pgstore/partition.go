package pgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

// ErrFenced is returned by Partition.Apply when another writer moved the
// partition's position: nothing of the batch was written, and the
// partition has read its position again.
var ErrFenced = errors.New("another projector moved this partition")

// Publisher sends a delta on a subject (core NATS publish).
type Publisher func(subject string, data []byte) error

// Partition is one partition of the store as a projection.Target.
type Partition struct {
	store   *Store
	n       int
	publish Publisher
	seller  func(json.RawMessage) ([]byte, string)

	mu         sync.Mutex
	committed  uint64 // the position in the table
	read       uint64 // the last sequence read, committed or not: Seq
	orders     int64  // the partition's order total at committed
	lastCommit time.Time
}

// Partition opens partition n for writing; its deltas go to publish (nil
// publishes nothing).
func (s *Store) Partition(ctx context.Context, n int, publish Publisher) (*Partition, error) {
	if n < 0 || n >= s.partitions {
		return nil, fmt.Errorf("partition %d: the store has partitions 0 to %d", n, s.partitions-1)
	}
	if publish == nil {
		publish = func(string, []byte) error { return nil }
	}
	p := &Partition{store: s, n: n, publish: publish, seller: s.view.SellerReader()}
	if err := p.reload(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Partition) reload(ctx context.Context) error {
	var seq, orders int64
	err := p.store.pool.QueryRow(ctx, fmt.Sprintf(`SELECT seq, orders FROM %s.positions WHERE partition = $1`, p.store.schema), p.n).Scan(&seq, &orders)
	if err != nil {
		return fmt.Errorf("read the position of partition %d: %w", p.n, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.committed, p.read, p.orders = uint64(seq), uint64(seq), orders //nolint:gosec // positions are stream sequences
	return nil
}

// Seq is the last stream sequence the partition read: everything up to it
// is applied or was not the partition's.
func (p *Partition) Seq() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.read
}

// Apply applies entries in one transaction per unit: the events up to and
// including a snapshot's end, or all of them.
func (p *Partition) Apply(ctx context.Context, entries []projection.Entry) error {
	for len(entries) > 0 {
		n := unitLen(entries, p.store.view)
		if err := p.applyUnit(ctx, entries[:n]); err != nil {
			p.mu.Lock()
			p.read = p.committed
			p.mu.Unlock()
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// unitLen is the length of the first unit of entries: up to the first
// snapshot end, which deletes what the rows before it left old.
func unitLen(entries []projection.Entry, view projection.Schema) int {
	for i := range entries {
		e := &entries[i].Event
		if e.Op == cdc.OpSnapshotEnd && (e.Collection == view.Orders || e.Collection == view.Employees) {
			return i + 1
		}
	}
	return len(entries)
}

func (p *Partition) applyUnit(ctx context.Context, entries []projection.Entry) error {
	p.mu.Lock()
	from, read := p.committed, p.read
	p.mu.Unlock()
	for len(entries) > 0 && entries[0].Seq <= read {
		entries = entries[1:]
	}
	if len(entries) == 0 {
		return nil
	}
	last := entries[len(entries)-1].Seq
	ch := p.plan(entries)
	if ch.empty() && time.Since(p.lastCommit) < positionEvery {
		p.mu.Lock()
		p.read = last
		p.mu.Unlock()
		return nil
	}
	start := time.Now()
	d, err := p.commit(ctx, ch, entries, from, last)
	label := strconv.Itoa(p.n)
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "RV001" {
			metricCommits.WithLabelValues(label, "fenced").Inc()
			if rerr := p.reload(ctx); rerr != nil {
				return errors.Join(ErrFenced, rerr)
			}
			return fmt.Errorf("%w: %s", ErrFenced, pgErr.Message)
		}
		metricCommits.WithLabelValues(label, "failed").Inc()
		return fmt.Errorf("write partition %d: %w", p.n, err)
	}
	metricCommitSeconds.Observe(time.Since(start).Seconds())
	metricCommits.WithLabelValues(label, "committed").Inc()
	metricPosition.WithLabelValues(label).Set(float64(last))
	p.mu.Lock()
	p.committed, p.read, p.orders, p.lastCommit = last, last, d.Orders, time.Now()
	p.mu.Unlock()
	p.send(d)
	return nil
}

// commit reads the held state of what entries touch, folds them into it
// and writes the result as the move from position from to last.
func (p *Partition) commit(ctx context.Context, ch *changes, entries []projection.Entry, from, last uint64) (Delta, error) {
	if err := p.readHeld(ctx, ch); err != nil {
		return Delta{}, err
	}
	ch.fold(entries, p)
	return p.write(ctx, ch, from, last)
}

// owns says whether ev is the partition's to apply.
func (p *Partition) owns(ev *cdc.Event) bool {
	switch ev.Collection {
	case p.store.view.Orders:
		return ev.Op == cdc.OpSnapshotBegin || ev.Op == cdc.OpSnapshotEnd || p.store.PartitionOf(ev.Key) == p.n
	case p.store.view.Employees:
		return p.n == 0
	}
	return false
}

// Run publishes the partition's position every second, and first a reset
// so that readers reload what an earlier owner may have committed without
// publishing, until ctx ends.
func (p *Partition) Run(ctx context.Context) error {
	p.mu.Lock()
	reset := Delta{Partition: p.n, From: p.committed, Seq: p.committed, Orders: p.orders, Reset: true}
	p.mu.Unlock()
	p.send(reset)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			p.mu.Lock()
			beat := Delta{Partition: p.n, From: p.committed, Seq: p.committed, Orders: p.orders}
			p.mu.Unlock()
			p.send(beat)
		}
	}
}

func (p *Partition) send(d Delta) {
	data, err := d.encode()
	if err != nil {
		p.store.logger.Error("encode a view delta", "partition", p.n, "err", err)
		return
	}
	if err := p.publish(p.store.UpdatesSubject(p.n), data); err != nil {
		// Readers find out from the next heartbeat and reload.
		p.store.logger.Warn("view delta not published", "partition", p.n, "seq", d.Seq, "err", err)
	}
}
