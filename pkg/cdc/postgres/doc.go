// Package postgres captures row changes from PostgreSQL with logical
// replication (the pgoutput plugin, through pglogrepl) and publishes them as
// cdc events.
//
// On its first start the source creates its publication (when missing) and
// its replication slot, exporting the slot's snapshot; it reads the captured
// tables inside that snapshot and then streams from the slot's consistent
// point, so every committed change is published exactly once in source order
// (and at worst republished with the same message id after a crash). The
// slot's flushed LSN is reported to PostgreSQL only after JetStream
// acknowledged every event of the transactions before it; a restart resumes
// from there. When nothing is pending the flushed LSN follows the server's
// WAL position, so WAL written for other tables never piles up behind an idle
// slot.
//
// A slot that disappeared or was invalidated while the ingestor was down
// cannot say what changed in the meantime: the source logs it, counts it in
// reportes_cdc_snapshots_total{reason="position_lost"}, creates a new slot and
// takes a new snapshot, whose begin and end markers let consumers drop rows
// deleted in the gap.
//
// An event's Key is the text of the row's primary key (of its replica
// identity index with REPLICA IDENTITY USING INDEX): the value itself for a
// one-column key, unless it is empty or starts with '[', and a JSON array of
// the values otherwise, so the empty string is a key like any other. A row that identifies
// nothing (only possible under REPLICA IDENTITY FULL without a key) is
// counted in reportes_postgres_skipped_changes_total and logged, and capture
// goes on; a value that cannot be decoded as its type is published as its
// text. Message ids built from keys are bounded and free of blanks and
// control characters (see cdc.Origin).
//
// Snapshots go through cdc.Snapshot, one bracket per table; the slot's state
// is kept through the Checkpoints the source is given (stream.Checkpoints in
// the ingestor).
//
// Run returns an error wrapping cdc.ErrPermanent when PostgreSQL refuses
// what only a person can fix: authentication (SQLSTATE class 28), a missing
// privilege such as REPLICATION (42501), a missing database (3D000), schema
// or table. Other failures are returned as they are, for the supervisor to
// retry.
package postgres
