// Package mirror keeps in memory what an API replica serves from the
// PostgreSQL view store (package pgstore): the per-seller counts of every
// partition, the employees and the totals. It is O(sellers) however many
// orders the store holds, and a dashboard request is a memory read.
//
// # Contract
//
// [Mirror.Run] subscribes to the partitions' deltas, then loads the whole
// store in one database snapshot, and from then on applies each delta that
// follows its partition's position. A delta that does not (one was missed:
// a NATS disconnect, a projector killed between commit and publish), a
// heartbeat ahead of it, or a reset makes it reload that partition from the
// tables, so the mirror converges to the store, and never moves a
// partition back. It is ready once loaded; its health reports an error
// while NATS cannot be reached, or while a partition has not been heard
// from for longer than the silence limit (no projector owns it): the
// figures could then be behind the stream without the mirror knowing.
//
// The view's sequence (frescura.secuencia, and the Seq of the updates it
// hands on) is the sum of the partitions' positions: it grows with every
// change the mirror applies, and with one partition it is the stream
// sequence of the last applied event, as in memory mode.
package mirror

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/reportes/reportes/pkg/projection"
	"github.com/reportes/reportes/pkg/projection/pgstore"
)

// Mirror is the in-memory copy of the store's dashboard.
type Mirror struct {
	store     *pgstore.Store
	title     string
	onUpdate  func(projection.Update)
	onApplied func()
	silence   time.Duration
	logger    *slog.Logger

	mu        sync.RWMutex
	parts     []part
	employees map[string]pgstore.Employee
	totals    map[string]int64 // per seller code, over the partitions
	applied   time.Time
	changes   uint64
	loaded    atomic.Bool
	problem   atomic.Pointer[problem] // what check found
	loadErr   atomic.Pointer[problem] // the last load's failure
	started   time.Time

	rendered atomic.Pointer[rendering]
	renderMu sync.Mutex
}

type part struct {
	seq     uint64
	orders  int64
	commit  time.Time
	sellers map[string]int64
	heard   time.Time
}

type problem struct {
	err   error
	since time.Time
}

type rendering struct {
	changes uint64
	body    []byte
}

// Option configures a Mirror.
type Option func(*Mirror)

// WithUpdates hands fn the Update of every change the mirror applies (and
// of every reload), as projection.WithUpdates does; fn must not block.
func WithUpdates(fn func(projection.Update)) Option { return func(m *Mirror) { m.onUpdate = fn } }

// WithOnApplied calls fn after every change the mirror applies (fn must
// not block).
func WithOnApplied(fn func()) Option { return func(m *Mirror) { m.onApplied = fn } }

// WithSilence sets how long a partition may go unheard before the mirror
// reports it (default 15s; its owner publishes every second).
func WithSilence(d time.Duration) Option { return func(m *Mirror) { m.silence = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(m *Mirror) { m.logger = l } }

// New returns an empty mirror of store; title is the dashboard's titulo.
func New(store *pgstore.Store, title string, opts ...Option) *Mirror {
	m := &Mirror{
		store: store, title: title, silence: 15 * time.Second, logger: slog.New(slog.DiscardHandler),
		parts: make([]part, store.Partitions()), employees: map[string]pgstore.Employee{}, totals: map[string]int64{},
		started: time.Now(),
	}
	for _, o := range opts {
		o(m)
	}
	return m
}

// Ready reports whether the mirror loaded the store.
func (m *Mirror) Ready() bool { return m.loaded.Load() }

// Health is the mirror's health, as a projector's.
func (m *Mirror) Health() projection.Health {
	h := projection.Health{Ready: m.loaded.Load()}
	if p := m.problem.Load(); p != nil {
		h.Err, h.Since = p.err, p.since
	}
	return h
}

// Run follows the deltas on nc until ctx ends.
func (m *Mirror) Run(ctx context.Context, nc *nats.Conn) error {
	msgs := make(chan *nats.Msg, 4096)
	sub, err := nc.ChanSubscribe(m.store.UpdatesSubject(-1), msgs)
	if err != nil {
		return fmt.Errorf("subscribe to the view's deltas: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for !m.loaded.Load() {
		if err := m.reload(ctx, -1); err != nil {
			m.fail(err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg := <-msgs:
			m.handle(ctx, msg.Data)
		case <-tick.C:
			m.check(nc)
		}
	}
}

func (m *Mirror) handle(ctx context.Context, data []byte) {
	d, err := pgstore.DecodeDelta(data)
	if err != nil || d.Partition < 0 || d.Partition >= len(m.parts) {
		m.logger.Warn("view delta ignored", "err", err, "partition", d.Partition)
		return
	}
	m.mu.Lock()
	p := &m.parts[d.Partition]
	p.heard = time.Now()
	cur := p.seq
	m.mu.Unlock()
	switch {
	case d.Reset || (d.Seq > cur && d.From != cur):
		if err := m.reload(ctx, d.Partition); err != nil {
			m.fail(err)
		}
	case d.Seq > cur:
		m.apply(d)
	}
}

// fail logs a failure to read the store (reload recorded it for check).
func (m *Mirror) fail(err error) {
	m.logger.Warn("view store not read; retrying", "err", err)
	if m.problem.Load() == nil {
		m.problem.Store(&problem{err: err, since: time.Now()})
	}
}

// check records whether NATS can be reached and every partition was heard
// from lately.
func (m *Mirror) check(nc *nats.Conn) {
	var err error
	switch le := m.loadErr.Load(); {
	case !nc.IsConnected():
		err = fmt.Errorf("cannot reach NATS (%s): the view's deltas cannot be read", nc.Status())
	case le != nil:
		err = le.err
	default:
		err = m.silent()
	}
	cur := m.problem.Load()
	switch {
	case err == nil && cur != nil:
		m.problem.Store(nil)
	case err != nil && (cur == nil || cur.err.Error() != err.Error()):
		since := time.Now()
		if cur != nil {
			since = cur.since
		}
		m.problem.Store(&problem{err: err, since: since})
	}
}

func (m *Mirror) silent() error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for n, p := range m.parts {
		heard := p.heard
		if heard.IsZero() {
			heard = m.started
		}
		if time.Since(heard) > m.silence {
			return fmt.Errorf("no projector has published partition %d of the view store for %s: start one (cmd/projector)", n, time.Since(heard).Round(time.Second))
		}
	}
	return nil
}

// JSON returns the dashboard, rendered at most once per change.
func (m *Mirror) JSON() []byte {
	m.mu.RLock()
	changes := m.changes
	m.mu.RUnlock()
	if r := m.rendered.Load(); r != nil && r.changes == changes {
		return r.body
	}
	m.renderMu.Lock()
	defer m.renderMu.Unlock()
	if r := m.rendered.Load(); r != nil && r.changes >= changes {
		return r.body
	}
	m.mu.RLock()
	changes = m.changes
	d := m.dashboardLocked()
	m.mu.RUnlock()
	body, _ := json.Marshal(d)
	body = append(body, '\n')
	m.rendered.Store(&rendering{changes: changes, body: body})
	return body
}

// Dashboard returns the dashboard.
func (m *Mirror) Dashboard() projection.Dashboard {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.dashboardLocked()
}

// Seq is the view's sequence: the sum of the partitions' positions.
func (m *Mirror) Seq() uint64 {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.seqLocked()
}
