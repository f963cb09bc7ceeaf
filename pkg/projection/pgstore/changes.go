package pgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/reportes/reportes/pkg/cdc"
	"github.com/reportes/reportes/pkg/projection"
)

// order is an order's state: its seller (invalid for none) and version.
type order struct {
	seller  pgtype.Text
	version uint64
	exists  bool
}

type employee struct {
	row    projection.EmployeeRow
	exists bool
}

// changes is what a unit of events does to the partition: the state of
// the keys it touches before (held, as in the tables) and after it.
type changes struct {
	orderKeys, employeeKeys []string // in the order first seen
	heldOrders, orders      map[string]order
	heldEmployees, emps     map[string]employee
	end                     *cdc.Event // the unit's snapshot end, when it is ours
	commit                  time.Time
}

func (c *changes) empty() bool {
	return len(c.orderKeys) == 0 && len(c.employeeKeys) == 0 && c.end == nil
}

// plan lists the keys the partition's events of entries touch.
func (p *Partition) plan(entries []projection.Entry) *changes {
	c := &changes{heldOrders: map[string]order{}, heldEmployees: map[string]employee{}}
	seenO, seenE := map[string]bool{}, map[string]bool{}
	for i := range entries {
		ev := &entries[i].Event
		if entries[i].Err != nil || !p.owns(ev) {
			continue
		}
		if ev.CommitTime.After(c.commit) {
			c.commit = ev.CommitTime
		}
		switch {
		case ev.Op == cdc.OpSnapshotEnd:
			c.end = ev
		case ev.Op == cdc.OpSnapshotBegin:
		case ev.Collection == p.store.view.Orders && !seenO[ev.Key]:
			seenO[ev.Key] = true
			c.orderKeys = append(c.orderKeys, ev.Key)
		case ev.Collection == p.store.view.Employees && !seenE[ev.Key]:
			seenE[ev.Key] = true
			c.employeeKeys = append(c.employeeKeys, ev.Key)
		}
	}
	return c
}

// readHeld reads the tables' state of the keys c touches.
func (p *Partition) readHeld(ctx context.Context, c *changes) error {
	if len(c.orderKeys) == 0 && len(c.employeeKeys) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	if len(c.orderKeys) > 0 {
		b.Queue(fmt.Sprintf(`SELECT key, seller, version FROM %s.orders WHERE key = ANY($1::bytea[])`, p.store.schema), byteKeys(c.orderKeys)).
			Query(func(rows pgx.Rows) error {
				var key []byte
				var o order
				var v int64
				_, err := pgx.ForEachRow(rows, []any{&key, &o.seller, &v}, func() error {
					o.version, o.exists = unflip(v), true
					c.heldOrders[string(key)] = o
					return nil
				})
				return err
			})
	}
	if len(c.employeeKeys) > 0 {
		b.Queue(fmt.Sprintf(`SELECT key, code, role, active, version FROM %s.employees WHERE key = ANY($1::bytea[])`, p.store.schema), byteKeys(c.employeeKeys)).
			Query(func(rows pgx.Rows) error {
				var key []byte
				var e employee
				var v int64
				_, err := pgx.ForEachRow(rows, []any{&key, &e.row.Code, &e.row.Role, &e.row.Active, &v}, func() error {
					e.row.Version, e.exists = unflip(v), true
					c.heldEmployees[string(key)] = e
					return nil
				})
				return err
			})
	}
	if err := p.store.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("read partition %d's keys: %w", p.n, err)
	}
	return nil
}

// fold applies entries, in order, to the held state, with the view's
// rules, and sets the Err of the entries it could use only partly.
func (c *changes) fold(entries []projection.Entry, p *Partition) {
	c.orders = make(map[string]order, len(c.orderKeys))
	for _, k := range c.orderKeys {
		c.orders[k] = c.heldOrders[k]
	}
	c.emps = make(map[string]employee, len(c.employeeKeys))
	for _, k := range c.employeeKeys {
		c.emps[k] = c.heldEmployees[k]
	}
	for i := range entries {
		e := &entries[i]
		if e.Err != nil || !p.owns(&e.Event) || e.Event.Op == cdc.OpSnapshotBegin || e.Event.Op == cdc.OpSnapshotEnd {
			continue
		}
		switch e.Event.Collection {
		case p.store.view.Orders:
			e.Err = c.foldOrder(&e.Event, p.seller)
		case p.store.view.Employees:
			e.Err = c.foldEmployee(&e.Event, p.store.view)
		}
	}
}

func (c *changes) foldOrder(ev *cdc.Event, seller func(json.RawMessage) ([]byte, string)) error {
	cur := c.orders[ev.Key]
	if cur.exists && ev.Version < cur.version {
		return nil // a stale copy of a change already superseded
	}
	switch {
	case ev.Op == cdc.OpDelete:
		c.orders[ev.Key] = order{}
		return nil
	case ev.After == nil:
		// An update whose document the source could no longer read: the
		// delete that follows settles it.
		if cur.exists {
			cur.version = ev.Version
			c.orders[ev.Key] = cur
		}
		return nil
	}
	next := order{version: ev.Version, exists: true}
	code, problem := seller(ev.After)
	if problem == "" && utf8.Valid(code) && bytes.IndexByte(code, 0) < 0 {
		next.seller = pgtype.Text{String: string(code), Valid: true}
	}
	c.orders[ev.Key] = next
	if problem != "" {
		return &projection.Problem{EventID: ev.ID, Reason: problem}
	}
	return nil
}

func (c *changes) foldEmployee(ev *cdc.Event, view projection.Schema) error {
	cur := c.emps[ev.Key]
	if cur.exists && ev.Version < cur.row.Version {
		return nil
	}
	if ev.Op == cdc.OpDelete {
		c.emps[ev.Key] = employee{}
		return nil
	}
	var prev *projection.EmployeeRow
	if cur.exists {
		prev = &cur.row
	}
	row, problems, err := view.Employee(ev, prev)
	if err != nil {
		return err
	}
	c.emps[ev.Key] = employee{row: row, exists: true}
	if len(problems) > 0 {
		return &projection.Problem{EventID: ev.ID, Reason: fmt.Sprint(problems)}
	}
	return nil
}

func byteKeys(keys []string) [][]byte {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i] = []byte(k)
	}
	return out
}
