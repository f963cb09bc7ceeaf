package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// rows is what a unit writes, as column arrays.
type rows struct {
	upKeys     [][]byte
	upSellers  []pgtype.Text
	upVersions []int64
	gone       [][]byte
	sellers    []string // per-seller count changes
	deltas     []int64
	orders     int64 // change of the order total
}

// orderRows turns c's order changes into the rows to write.
func (c *changes) orderRows() rows {
	var r rows
	counts := map[string]int64{}
	var names []string
	count := func(s pgtype.Text, d int64) {
		if !s.Valid {
			return
		}
		if _, ok := counts[s.String]; !ok {
			names = append(names, s.String)
		}
		counts[s.String] += d
	}
	for _, k := range c.orderKeys {
		held, now := c.heldOrders[k], c.orders[k]
		if held == now {
			continue
		}
		if held.exists {
			count(held.seller, -1)
			r.orders--
		}
		if now.exists {
			count(now.seller, +1)
			r.orders++
			r.upKeys, r.upSellers, r.upVersions = append(r.upKeys, []byte(k)), append(r.upSellers, now.seller), append(r.upVersions, flip(now.version))
		} else if held.exists {
			r.gone = append(r.gone, []byte(k))
		}
	}
	for _, s := range names {
		if counts[s] != 0 {
			r.sellers, r.deltas = append(r.sellers, s), append(r.deltas, counts[s])
		}
	}
	return r
}

// write commits c as the partition's move from position from to last, and
// returns the delta to publish.
func (p *Partition) write(ctx context.Context, c *changes, from, last uint64) (Delta, error) {
	d := Delta{Partition: p.n, From: from, Seq: last, CommitTime: c.commit, Sellers: map[string]int64{}}
	r := c.orderRows()
	s, n := p.store.schema, p.n
	b := &pgx.Batch{}
	b.Queue(fmt.Sprintf(`SELECT %s.advance($1, $2, $3, $4, $5)`, s), n, int64(from), int64(last), r.orders, nullTime(c)). //nolint:gosec // stream sequences
																QueryRow(func(row pgx.Row) error { return row.Scan(&d.Orders) })
	if len(r.upKeys) > 0 {
		b.Queue(fmt.Sprintf(`INSERT INTO %s.orders (key, partition, seller, version)
			SELECT k, $1, s, v FROM unnest($2::bytea[], $3::text[], $4::bigint[]) AS t(k, s, v)
			ON CONFLICT (key) DO UPDATE SET seller = excluded.seller, version = excluded.version`, s), n, r.upKeys, r.upSellers, r.upVersions)
	}
	if len(r.gone) > 0 {
		b.Queue(fmt.Sprintf(`DELETE FROM %s.orders WHERE key = ANY($1::bytea[])`, s), r.gone)
	}
	if len(r.sellers) > 0 {
		b.Queue(fmt.Sprintf(`INSERT INTO %[1]s.seller_orders AS c (seller, partition, orders)
			SELECT s, $1, d FROM unnest($2::text[], $3::bigint[]) AS t(s, d)
			ON CONFLICT (seller, partition) DO UPDATE SET orders = c.orders + excluded.orders
			RETURNING seller, orders`, s), n, r.sellers, r.deltas).Query(d.collectSellers)
	}
	p.queueEmployees(b, c, &d)
	p.queueEnd(b, c, &d)
	if err := p.store.pool.SendBatch(ctx, b).Close(); err != nil {
		return Delta{}, err
	}
	return d, nil
}

func nullTime(c *changes) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: c.commit, Valid: !c.commit.IsZero()}
}

func (d *Delta) collectSellers(rows pgx.Rows) error {
	var seller string
	var orders int64
	_, err := pgx.ForEachRow(rows, []any{&seller, &orders}, func() error {
		d.Sellers[seller] = orders
		return nil
	})
	return err
}

// queueEmployees writes c's employee changes.
func (p *Partition) queueEmployees(b *pgx.Batch, c *changes, d *Delta) {
	var keys, gone [][]byte
	var codes, roles []string
	var active []bool
	var versions []int64
	for _, k := range c.employeeKeys {
		held, now := c.heldEmployees[k], c.emps[k]
		switch {
		case held == now:
		case now.exists:
			keys, codes, roles = append(keys, []byte(k)), append(codes, now.row.Code), append(roles, now.row.Role)
			active, versions = append(active, now.row.Active), append(versions, flip(now.row.Version))
			d.Employees = append(d.Employees, Employee{Key: []byte(k), Code: now.row.Code, Role: now.row.Role, Active: now.row.Active})
		case held.exists:
			gone = append(gone, []byte(k))
			d.Gone = append(d.Gone, []byte(k))
		}
	}
	s := p.store.schema
	if len(keys) > 0 {
		b.Queue(fmt.Sprintf(`INSERT INTO %s.employees (key, code, role, active, version)
			SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::boolean[], $5::bigint[])
			ON CONFLICT (key) DO UPDATE SET code = excluded.code, role = excluded.role, active = excluded.active, version = excluded.version`, s),
			keys, codes, roles, active, versions)
	}
	if len(gone) > 0 {
		b.Queue(fmt.Sprintf(`DELETE FROM %s.employees WHERE key = ANY($1::bytea[])`, s), gone)
	}
}

// queueEnd removes, at a snapshot's end, the keys older than the snapshot
// (those neither it nor a later change wrote).
func (p *Partition) queueEnd(b *pgx.Batch, c *changes, d *Delta) {
	if c.end == nil {
		return
	}
	s, v := p.store.schema, flip(c.end.Version)
	if c.end.Collection == p.store.view.Employees {
		b.Queue(fmt.Sprintf(`DELETE FROM %s.employees WHERE version < $1 RETURNING key`, s), v).Query(func(rows pgx.Rows) error {
			var key []byte
			_, err := pgx.ForEachRow(rows, []any{&key}, func() error {
				d.Gone = append(d.Gone, key)
				return nil
			})
			return err
		})
		return
	}
	b.Queue(fmt.Sprintf(`WITH d AS (DELETE FROM %[1]s.orders WHERE partition = $1 AND version < $2 RETURNING seller),
			n AS (SELECT seller, count(*) AS c FROM d WHERE seller IS NOT NULL GROUP BY seller),
			u AS (UPDATE %[1]s.seller_orders s SET orders = s.orders - n.c FROM n
				WHERE s.partition = $1 AND s.seller = n.seller RETURNING s.seller, s.orders),
			t AS (UPDATE %[1]s.positions SET orders = orders - (SELECT count(*) FROM d) WHERE partition = $1 RETURNING orders)
		SELECT u.seller, u.orders, (SELECT orders FROM t) FROM u
		UNION ALL SELECT NULL, NULL, (SELECT orders FROM t) WHERE NOT EXISTS (SELECT 1 FROM u)`, s), p.n, v).Query(func(rows pgx.Rows) error {
		var seller pgtype.Text
		var orders pgtype.Int8
		_, err := pgx.ForEachRow(rows, []any{&seller, &orders, &d.Orders}, func() error {
			if seller.Valid {
				d.Sellers[seller.String] = orders.Int64
			}
			return nil
		})
		return err
	})
}
