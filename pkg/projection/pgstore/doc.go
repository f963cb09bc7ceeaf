// Package pgstore keeps the dashboard view in PostgreSQL: the state that
// exactness needs (each order's seller and version, each employee's row)
// and the per-seller counts, split into a fixed number of partitions of
// the order keys, each written by one projector at a time.
//
// # Contract
//
// A [Partition] is a projection.Target: it applies the events of its
// partition in one transaction per batch, and that transaction also moves
// the partition's position (the stream sequence it reflects) from the one
// it read to the batch's last. A transaction that finds the position moved
// by someone else fails with [ErrFenced] and changes nothing, so a crash
// between apply and ack can neither lose nor double-apply an event, and two
// projectors that both believe they own a partition cannot corrupt it: one
// of them fails and reads the partition again. Events are applied with the
// view's rules (projection.View): older versions are ignored, an order's
// seller is read with projection.Schema.SellerReader, employees with
// projection.Schema.Employee, and a snapshot's end removes the keys older
// than the snapshot.
//
// The order events are split by the key token of their subject
// (cdc.Subject): FNV-1a of it, modulo the partition count. Every event of a
// key thus goes to one partition, in stream order. Snapshot markers of the
// orders reach every partition; the employees, and any other collection,
// partition 0. The partition count is fixed when the store is created; a
// different count is refused (re-partitioning means rebuilding the store
// from the stream into a new schema).
//
// After each commit a partition publishes a [Delta] on core NATS: the
// absolute per-partition counts of the sellers it changed, its order total
// and, for partition 0, the employees it changed. Deltas chain by position
// (From, Seq). A partition also publishes its position every second, and a
// reset when it starts, so a reader that missed a delta (a disconnect, a
// projector killed between commit and publish) notices and reloads that
// partition from the tables ([Store.Load]). Package mirror is that reader.
//
// # Schema
//
// Migrations are versioned (schema_migrations) and applied at start-up
// under an advisory lock, idempotently. In schema S (VIEW_SCHEMA):
//
//	S.meta(partitions)                         the partition count
//	S.positions(partition, seq, orders, commit_time, applied_at)
//	S.orders(key bytea, partition, seller, version)
//	S.seller_orders(partition, seller, orders) per-partition counts
//	S.employees(key bytea, code, role, active, version)
//	S.dashboard                                view: the dashboard's detail
//	S.totals                                   view: the dashboard's totals
//
// A seller code that PostgreSQL text cannot hold (a NUL byte, invalid
// UTF-8) is no employee's code: such orders are stored without a seller,
// which gives the same dashboard. Versions are stored with their top bit
// flipped, so that bigint order is version order.
package pgstore
