// Package projection maintains the dashboard view, per-seller order counts,
// from the change events in the stream.
//
// # Contract
//
// [View.Apply] takes events in stream order with their stream sequence and is
// idempotent: an event whose sequence was already applied is ignored, and so
// is an event older (by [cdc.Event.Version]) than what the view already holds
// for its key. Applying any prefix of the stream, restarting and applying it
// again, or applying events redelivered by JetStream therefore converges to
// the same view, which equals what the original service would compute from
// the sources at the position of the last applied event:
//
//   - total_empleados counts every row of the employees table;
//   - total_pedidos_procesados counts every order document;
//   - each employee appears in the detail with the orders whose seller field
//     equals its code (zero included), ordered by orders descending, then code;
//   - orders whose seller is missing, not a string, or not the code of any
//     employee still count in the total, and in pedidos_sin_empleado; they do
//     not appear in the detail, exactly as the original service's join.
//
// An event the view cannot interpret (an order without a usable seller, an
// employee row without a code) is still applied as far as it can be and is
// reported to the caller as a [Problem], so nothing is dropped silently.
//
// A snapshot (between snapshot_begin and snapshot_end markers of one
// collection) replaces the collection's content: keys the view held before the
// snapshot began, that the snapshot did not contain and that no later change
// touched, are removed when the snapshot ends. That is how a view survives a
// source position lost and re-snapshotted.
//
// A compacted stream (the last event of each key's subject, see
// cdc.Subject) gives the same view: each key's last event is its current
// state, and an end marker whose begin a later snapshot replaced removes
// the keys older than its snapshot. The [Projector] counts the events
// missing before the stream's first as missed
// (reportes_projection_events_missed_total, and an error log) only when
// they may have been needed: on a stream that keeps every event, or whose
// limits or per-message TTLs may drop a key's last event, or that was
// emptied; never for the gaps compaction leaves.
//
// # View snapshots
//
// [View.Snapshot] encodes the view's state at its stream sequence and
// [View.Restore] loads it into an empty view: applying the events after that
// sequence then gives exactly the view a full replay gives (tested on random
// histories). With [WithSnapshots] the [Projector] keeps one in a JetStream
// object store and starts from it; a snapshot that does not fit the stream or
// the schema is ignored and the view rebuilt from the stream.
//
// # Rebuilds
//
// [Serving] holds the projector whose view is served. [Serving.Rebuild]
// builds a new view beside it, from the latest snapshot or from the
// stream's start ([RebuildFrom] says which events must be applied again;
// never an empty view from the middle of the stream), and once it caught
// up swaps it in: the old projector is stopped, the new view draws level
// with it, and from then on it is served, at a stream sequence at least the
// old one's. Readers that ask Serving for the view never see it go back,
// and the updates Serving hands on stay in order without a gap: the old
// projector's until the swap, one that takes followers from the old view
// to the new one, then the new projector's. One rebuild runs at a time.
package projection
