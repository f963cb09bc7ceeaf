package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/reportes/reportes/pkg/cdc"
)

// txn is the transaction being decoded.
type txn struct {
	active     bool
	finalLSN   pglogrepl.LSN
	lsn        []byte // finalLSN as text, reused
	commitTime time.Time
	seq        int
}

// relation is a relation message with what decoding its tuples needs.
type relation struct {
	*pglogrepl.RelationMessage
	name string
	cols []column
}

type streamer struct {
	s         *Source
	pub       cdc.Publisher
	relations map[uint32]*relation
	keys      map[string][]string // key columns per table, when it has a key (see tableKey)
	tx        txn
	change    dml       // the change being handled, its tuples reused
	values    [][]byte  // a tuple's values, reused
	ev        cdc.Event // the event being published, reused (see cdc.Publisher)
}

func newStreamer(s *Source, pub cdc.Publisher, tables []table) *streamer {
	st := &streamer{s: s, pub: pub, relations: map[uint32]*relation{}, keys: map[string][]string{}}
	for _, t := range tables {
		if len(t.keys) > 0 {
			st.keys[t.name] = t.keys
		}
	}
	return st
}

func (s *Source) stream(ctx context.Context, repl *pgconn.PgConn, pub cdc.Publisher, start pglogrepl.LSN, tables []table) error {
	if err := s.startReplication(ctx, repl, start); err != nil {
		return err
	}
	st := newStreamer(s, pub, tables)
	// Messages are received with context.Background, which pgconn does not
	// watch: with a cancellable context it arms a context watcher for every
	// message, a third of this loop's CPU on one-row transactions. The read
	// deadline is the next status update instead, and cancelling ctx moves
	// it to now.
	conn := repl.Conn()
	next, err := s.nextStatus(conn)
	if err != nil {
		return err
	}
	defer context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Now()) })()
	for {
		if ctx.Err() != nil {
			return s.shutdown(repl, pub)
		}
		if err := pub.Err(); err != nil {
			return err
		}
		if !time.Now().Before(next) {
			if err := s.sendStatus(ctx, repl, true); err != nil {
				return err
			}
			if next, err = s.nextStatus(conn); err != nil {
				return err
			}
			continue // a cancel just before the new deadline is seen above
		}
		if err := st.receive(ctx, repl); err != nil {
			return err
		}
	}
}

// startReplication starts streaming the slot from start.
func (s *Source) startReplication(ctx context.Context, repl *pgconn.PgConn, start pglogrepl.LSN) error {
	// publication_names is a list of identifiers inside a string literal:
	// unquoted, a name with capitals or a comma would name another
	// publication, and a quote would end the literal.
	pubs := pgx.Identifier{s.cfg.Publication}.Sanitize()
	err := pglogrepl.StartReplication(ctx, repl, s.cfg.Slot, start, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(pubs, "'", "''") + "'", "messages 'true'"},
	})
	if err != nil {
		return fmt.Errorf("start replication from %s: %w", start, err)
	}
	s.logger.Info("streaming", "slot", s.cfg.Slot, "from", start)
	s.streaming.Store(true)
	return nil
}

// nextStatus returns when the next status update is due, which it makes
// the connection's receive deadline.
func (s *Source) nextStatus(conn net.Conn) (time.Time, error) {
	next := time.Now().Add(s.cfg.StatusInterval)
	if err := conn.SetReadDeadline(next); err != nil {
		return next, fmt.Errorf("set receive deadline: %w", err)
	}
	return next, nil
}

// receive handles the next replication message. The receive deadline (the
// next status update, or a cancel) passing is no error.
func (st *streamer) receive(ctx context.Context, repl *pgconn.PgConn) error {
	raw, err := repl.ReceiveMessage(context.Background())
	if err != nil {
		if pgconn.Timeout(err) || ctx.Err() != nil {
			return nil //nolint:nilerr // the deadline: a status update is due, or ctx ended
		}
		return fmt.Errorf("receive replication message: %w", err)
	}
	switch msg := raw.(type) {
	case *pgproto3.CopyData:
		return st.copyData(ctx, repl, msg.Data)
	case *pgproto3.ErrorResponse:
		return fmt.Errorf("replication stream: %w", pgconn.ErrorResponseToPgError(msg))
	}
	return fmt.Errorf("replication stream: unexpected message %T", raw)
}

func (s *Source) sendStatus(ctx context.Context, repl *pgconn.PgConn, reply bool) error {
	lsn := s.AckedLSN()
	err := pglogrepl.SendStandbyStatusUpdate(ctx, repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: lsn, WALFlushPosition: lsn, WALApplyPosition: lsn,
		ClientTime: time.Now(), ReplyRequested: reply,
	})
	if err != nil {
		return fmt.Errorf("send standby status: %w", err)
	}
	metricConfirmedLSN.Set(float64(lsn))
	return nil
}

// shutdown waits (boundedly) for what was published to be acknowledged and
// reports the final position, so a restart repeats as little as possible.
func (s *Source) shutdown(repl *pgconn.PgConn, pub cdc.Publisher) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Flush(ctx); err != nil {
		s.logger.Warn("stopping with unacknowledged events; they will be republished on restart", "err", err)
	}
	if err := s.sendStatus(ctx, repl, false); err != nil {
		return err
	}
	s.logger.Info("replication stopped", "slot", s.cfg.Slot, "flushed", s.AckedLSN())
	return context.Canceled
}

func (st *streamer) copyData(ctx context.Context, repl *pgconn.PgConn, data []byte) error {
	if len(data) == 0 {
		return errors.New("replication stream: empty CopyData")
	}
	switch data[0] {
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(data[1:])
		if err != nil {
			return fmt.Errorf("parse keepalive: %w", err)
		}
		metricServerLSN.Set(float64(ka.ServerWALEnd))
		if acked := uint64(st.s.AckedLSN()); uint64(ka.ServerWALEnd) > acked {
			metricSlotLag.Set(float64(uint64(ka.ServerWALEnd) - acked))
		} else {
			metricSlotLag.Set(0)
		}
		if !st.tx.active {
			// Everything the server decoded up to ServerWALEnd has been
			// received; once it is acknowledged, WAL up to there (including
			// WAL of tables we do not capture) can be released.
			walEnd := uint64(ka.ServerWALEnd)
			if err := st.pub.AfterAcked(func() { advance(&st.s.acked, walEnd) }); err != nil {
				return err
			}
		}
		if ka.ReplyRequested {
			return st.s.sendStatus(ctx, repl, false)
		}
		return nil
	case pglogrepl.XLogDataByteID:
		xld, err := pglogrepl.ParseXLogData(data[1:])
		if err != nil {
			return fmt.Errorf("parse xlog data: %w", err)
		}
		return st.logical(ctx, xld)
	}
	return nil
}

func (st *streamer) logical(ctx context.Context, xld pglogrepl.XLogData) error {
	data := xld.WALData
	if len(data) == 0 {
		return fmt.Errorf("empty logical message at %s", xld.WALStart)
	}
	var err error
	switch data[0] {
	case 'B':
		err = st.begin(data)
	case 'C':
		err = st.commit(data)
	case 'I', 'U', 'D':
		if err = parseDML(data, &st.change); err == nil {
			return st.apply(ctx, &st.change)
		}
	default:
		var msg pglogrepl.Message
		if msg, err = pglogrepl.Parse(data); err == nil {
			return st.other(ctx, msg)
		}
	}
	if err != nil {
		return fmt.Errorf("parse logical message at %s: %w", xld.WALStart, err)
	}
	return nil
}

func (st *streamer) begin(data []byte) error {
	m, err := parseBegin(data)
	if err != nil {
		return err
	}
	st.tx = txn{active: true, finalLSN: m.finalLSN, lsn: appendLSN(st.tx.lsn[:0], m.finalLSN), commitTime: m.commitTime}
	return nil
}

// commit acknowledges the transaction's end LSN once its events are.
func (st *streamer) commit(data []byte) error {
	m, err := parseCommit(data)
	if err != nil {
		return err
	}
	st.tx.active = false
	cdc.SetLastCommit(cdc.SourcePostgres, float64(m.commitTime.UnixNano())/1e9)
	end := uint64(m.endLSN)
	return st.pub.AfterAcked(func() { advance(&st.s.acked, end) })
}

// other handles the messages that change no row: relations, which the
// changes after them refer to, and truncates.
func (st *streamer) other(ctx context.Context, msg pglogrepl.Message) error {
	switch m := msg.(type) {
	case *pglogrepl.RelationMessage:
		r := &relation{RelationMessage: m, name: m.Namespace + "." + m.RelationName, cols: make([]column, len(m.Columns))}
		keys, known := st.keys[r.name]
		for i, c := range m.Columns {
			// With REPLICA IDENTITY FULL pgoutput flags every column; the
			// table's key is what the snapshot identified its rows by.
			key := c.Flags&1 == 1
			if known {
				key = slices.Contains(keys, c.Name)
			}
			r.cols[i] = column{name: c.Name, oid: c.DataType, key: key}
		}
		st.relations[m.RelationID] = r
	case *pglogrepl.TruncateMessage:
		return st.truncate(ctx, m)
	case *pglogrepl.LogicalDecodingMessage:
		if m.Prefix != watermarkPrefix || !m.Transactional {
			return nil
		}
		at := cdc.Position{Text: string(st.tx.lsn), Version: uint64(st.tx.finalLSN), Time: st.tx.commitTime}
		return st.s.backfill.Watermark(ctx, st.pub, string(m.Content), at)
	}
	return nil
}

// truncate publishes a TRUNCATE as a snapshot of each table without rows:
// it carries none, and says the table is empty as of this transaction,
// which is what an empty snapshot says too.
func (st *streamer) truncate(ctx context.Context, m *pglogrepl.TruncateMessage) error {
	for _, id := range m.RelationIDs {
		rel, ok := st.relations[id]
		if !ok {
			return fmt.Errorf("truncate of unknown relation %d", id)
		}
		st.s.backfill.ObserveAll(rel.name)
		snap := fmt.Sprintf("truncate:%s@%s", rel.name, st.tx.finalLSN)
		for _, op := range []cdc.Op{cdc.OpSnapshotBegin, cdc.OpSnapshotEnd} {
			ev := st.event(rel.name, op)
			ev.Snapshot = snap
			if err := st.pub.Publish(ctx, ev); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendLSN appends lsn as PostgreSQL prints it (pglogrepl.LSN.String:
// %X/%X), without fmt: this runs for every transaction.
func appendLSN(b []byte, lsn pglogrepl.LSN) []byte {
	const hex = "0123456789ABCDEF"
	half := func(b []byte, v uint64) []byte {
		var tmp [8]byte
		i := len(tmp)
		for {
			i--
			tmp[i] = hex[v&0xF]
			v >>= 4
			if v == 0 {
				break
			}
		}
		return append(b, tmp[i:]...)
	}
	return half(append(half(b, uint64(lsn)>>32), '/'), uint64(lsn)&0xFFFF_FFFF)
}

func advance(v interface {
	Load() uint64
	CompareAndSwap(old, new uint64) bool
}, to uint64) {
	for {
		cur := v.Load()
		if to <= cur || v.CompareAndSwap(cur, to) {
			return
		}
	}
}

func (st *streamer) apply(ctx context.Context, m *dml) error {
	rel, ok := st.relations[m.relID]
	if !ok {
		return fmt.Errorf("change for unknown relation %d", m.relID)
	}
	name, cols := rel.name, rel.cols
	op := m.op
	var after, before json.RawMessage
	var key, oldKey string
	var hasKey, hasOldKey bool
	var err error
	if op != cdc.OpDelete {
		if after, key, hasKey, err = st.tuple(cols, m.new); err != nil {
			return fmt.Errorf("decode %s row: %w", name, err)
		}
	}
	if m.oldType != 0 {
		if before, oldKey, hasOldKey, err = st.tuple(cols, m.old); err != nil {
			return fmt.Errorf("decode %s old row: %w", name, err)
		}
	}
	switch {
	case op == cdc.OpDelete:
		key, hasKey = oldKey, hasOldKey
	case !hasKey && hasOldKey && op == cdc.OpUpdate:
		// A key column stored out of line and left unchanged is not in the
		// new row ('u'); the server then sends the old key, which it still is.
		key, hasKey = oldKey, true
	}
	if !hasKey {
		// Publishing it would be refused by every consumer, and failing
		// would repeat it for ever: count it, say why, and go on.
		st.s.skipped(name, op, st.tx.finalLSN.String(), "no_key")
		return nil
	}
	if op == cdc.OpUpdate && hasOldKey && oldKey != key {
		// The key changed: to consumers that is one row gone and another
		// one new.
		if err := st.emit(ctx, name, cdc.OpDelete, oldKey, nil, before); err != nil {
			return err
		}
		return st.emit(ctx, name, cdc.OpInsert, key, after, nil)
	}
	if m.oldType == 'K' && op == cdc.OpUpdate {
		before = nil
	}
	return st.emit(ctx, name, op, key, after, before)
}

func (st *streamer) tuple(cols []column, t []tupleCol) (json.RawMessage, string, bool, error) {
	if len(t) != len(cols) {
		return nil, "", false, fmt.Errorf("tuple has %d columns, relation %d", len(t), len(cols))
	}
	st.values = slices.Grow(st.values[:0], len(t))[:len(t)]
	for i, c := range t {
		st.values[i] = c.data // nil for NULL and unchanged TOASTed values; empty, not nil, for ''
	}
	row, key, ok := st.s.dec.row(cols, st.values, func(i int) bool {
		// 'u': an unchanged TOASTed value the server did not send; publishing
		// it as null would be a lie, so the column is left out.
		return t[i].kind != 'u'
	})
	return row, key, ok, nil
}

// event returns the next event of the transaction, whose id numbers it
// among the transaction's events. It is valid until the next call.
func (st *streamer) event(collection string, op cdc.Op) *cdc.Event {
	st.tx.seq++
	id, position := st.s.origin.Change(st.tx.lsn, st.tx.seq)
	st.ev = cdc.Event{
		ID: id, Source: cdc.SourcePostgres, Collection: collection, Op: op,
		Position: position, Version: uint64(st.tx.finalLSN), CommitTime: st.tx.commitTime,
	}
	return &st.ev
}

func (st *streamer) emit(ctx context.Context, collection string, op cdc.Op, key string, after, before json.RawMessage) error {
	st.s.backfill.Observe(collection, key)
	ev := st.event(collection, op)
	ev.Key, ev.After, ev.Before = key, after, before
	cdc.CountRead(cdc.SourcePostgres, 1)
	return st.pub.Publish(ctx, ev)
}
